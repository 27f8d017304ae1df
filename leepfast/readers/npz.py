"""The ``.npz`` reader: one array of a NumPy archive, never unpickled.

An ``.npz`` is a zip of ``.npy`` members. A stored (uncompressed) member is a ``.npy``
at an offset in the archive, mapped in place like any ``.npy``. A compressed member
(``numpy.savez_compressed``) is streamed: each pass opens it and decompresses one block
of rows at a time into one block-sized buffer, so the memory stays one block whatever
the member's size. Its header is parsed by :mod:`leepfast.readers.npy`, with the same
limits and checks. ``key`` names the array (``numpy.savez``'s keyword, or ``arr_0``)
when the archive holds several.
"""

import os
import struct
import zipfile
import zlib

import numpy as np

from .. import _driver
from . import npy
from ._common import choose, fail, file_size
from .mapped import PredictionFile, RowFile

NAME = "npz"

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes, then name and extra field

#: What zipfile and zlib raise for a damaged archive or member.
DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError)


def members(path):
    """The ``.npy`` members of a zip whose every member is one, or None (not an npz)."""
    with open(path, "rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            return None
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    if not infos or not all(i.filename.endswith(".npy") for i in infos):
        return None
    return infos


def claims(path):
    """A zip archive of ``.npy`` members (what ``numpy.savez`` writes)."""
    return members(path) is not None


def _data_offset(path, info, role, name):
    """Where a stored member's bytes begin in the archive (after its local header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        raw = f.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
        fail(role, name, f"member {info.filename!r} has no local header at its offset")
    fields = _LOCAL_HEADER.unpack(raw)
    return info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """The array ``key`` of an ``.npz`` (the only one when ``key`` is None), as a row
    file: mapped when stored, streamed when compressed."""
    name = os.fspath(path)
    file_size(path, role)
    infos = members(path)
    keys = [i.filename[:-4] for i in infos]
    info = infos[keys.index(choose(keys, key, role, name, "arrays"))]
    where = f"{name}[{info.filename[:-4]}]"
    if info.flag_bits & 0x1:
        fail(role, where, "is encrypted; expected a plain .npz")
    try:
        with zipfile.ZipFile(path) as z, z.open(info) as m:
            found, shape, fortran, offset = npy.read_header(
                m, info.file_size, role, where, npy.FLOAT_DESCR, npy.rows_kinds(role), 2
            )
    except (*DAMAGED, OSError) as err:  # OSError: an offset past any file (EINVAL)
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        fail(role, where, f"is a damaged zip member ({err})")
    if info.compress_type == zipfile.ZIP_STORED:
        # its bytes are the .npy, mapped where they lie (its CRC is not checked: that
        # would read it once more; a .npy has none either)
        begin = _data_offset(path, info, role, name)
        size = file_size(path, role)
        if info.compress_size != info.file_size or begin + info.file_size > size:
            fail(
                role,
                where,
                f"is a damaged zip member: {info.file_size} bytes stored in "
                f"{info.compress_size} from byte {begin} of a {size}-byte file",
            )
        start = begin + offset
        f = PredictionFile(path, NAME, found, shape, start, fortran, role=role)
    else:
        if fortran:
            fail(
                role,
                where,
                "is a compressed Fortran-ordered array, which cannot be read by rows "
                "without decompressing it whole: save it in C order "
                "(numpy.ascontiguousarray) or uncompressed (numpy.savez)",
            )
        f = CompressedMember(path, info, found, shape, offset, role)
    return f.given(dtype, n_source, info.filename[:-4])


class CompressedMember(RowFile):
    """A compressed ``.npz`` member of C-ordered rows, decompressed one block at a time
    on each pass (the row file protocol of :mod:`leepfast.readers.registry`)."""

    def __init__(self, path, info, dtype, shape, offset, role):
        super().__init__(path, NAME, dtype, shape, role)
        self.member = info.filename
        self.offset = offset  # of the data within the member

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(first row in the member, block)``, each block decompressed into one
        block-sized buffer, reused (a block is valid until the next is asked for)."""
        self.check_open()
        rows = _driver.block_rows(
            block_size, self.n_source, self.dtype.itemsize, logits=logits
        )
        native = self.dtype.newbyteorder("=")
        buffer = np.empty((min(rows, self.n_samples), self.n_source), native)
        raw = buffer.view(np.uint8).reshape(-1) if self.dtype.isnative else None
        row_bytes = self.n_source * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as z, z.open(self.member) as m:
            m.read(self.offset)
            for start in range(0, self.n_samples, rows):
                if start:
                    self.check_unchanged()
                k = min(rows, self.n_samples - start)
                block = buffer[:k]
                try:
                    if raw is not None:  # straight into the buffer
                        got = m.readinto(memoryview(raw[: k * row_bytes]))
                    else:
                        data = m.read(k * row_bytes)
                        got = len(data)
                        if got == k * row_bytes:
                            swapped = np.frombuffer(data, self.dtype).reshape(k, -1)
                            np.copyto(block, swapped, casting="equiv")
                except DAMAGED as err:
                    fail(
                        self.role,
                        self.path,
                        f"member {self.member!r} is damaged in rows {start} to "
                        f"{start + k - 1} ({err})",
                    )
                if got != k * row_bytes:
                    fail(
                        self.role,
                        self.path,
                        f"member {self.member!r} ended at row {start + got // row_bytes}"
                        f" of {self.n_samples} (did the file change?)",
                    )
                yield start, block
