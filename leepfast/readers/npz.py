"""The ``.npz`` reader: one array of a NumPy archive, never unpickled.

An ``.npz`` is a zip of ``.npy`` members. A stored (uncompressed) member is a ``.npy``
at an offset in the archive, mapped in place like any ``.npy``. A compressed member
(``numpy.savez_compressed``) is streamed: each pass opens it and decompresses one block
of rows at a time into one block-sized buffer, so the memory stays one block whatever
the member's size. Its header is parsed by :mod:`leepfast.readers.npy`, with the same
limits and checks. ``key`` names the array (``numpy.savez``'s keyword, or ``arr_0``)
when the archive holds several.
"""

import contextlib
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


def _is_zip(path):
    with open(path, "rb") as f:
        return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def _damaged(path):
    """Why zipfile cannot read the archive ``path``, or None."""
    try:
        with zipfile.ZipFile(path):
            return None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        return str(e) or type(e).__name__


def members(path):
    """The ``.npy`` members of a zip whose every member is one, or None (not an npz)."""
    if not _is_zip(path) or _damaged(path):
        return None
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    if not infos or not all(i.filename.endswith(".npy") for i in infos):
        return None
    return infos


def claims(path):
    """A zip archive of ``.npy`` members (what ``numpy.savez`` writes), or a damaged zip
    archive named ``.npz`` (refused by :func:`open_rows`, naming the damage)."""
    if members(path) is not None:
        return True
    name = os.fspath(path).lower()
    return name.endswith(".npz") and _is_zip(path) and _damaged(path) is not None


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
    if infos is None:  # claimed for its name: a damaged zip archive
        why = _damaged(path) or "it changed while it was opened"
        fail(role, name, f"is a damaged zip archive ({why})")
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
        begin = None
        if info.compress_type == zipfile.ZIP_DEFLATED:
            begin = _data_offset(path, info, role, name)
            size = file_size(path, role)
            if begin + info.compress_size > size:
                fail(
                    role,
                    where,
                    f"is a damaged zip member: {info.compress_size} bytes from byte "
                    f"{begin} of a {size}-byte file",
                )
        f = CompressedMember(path, info, found, shape, offset, role, begin)
    return f.given(dtype, n_source, info.filename[:-4])


#: Compressed bytes read from the archive at a time (what one piece inflates to is
#: bounded by the block it fills: a zip bomb never takes more than a block).
PIECE = 1 << 20


class _Inflater:
    """A deflated member inflated from the archive straight into the caller's buffers
    (zipfile's reader copies each piece several times over: a third of a pass), with
    its CRC-32 checked when it ends."""

    def __init__(self, f, begin, size, crc):
        f.seek(begin)
        self.f, self.left, self.crc = f, size, crc
        self.inflate = zlib.decompressobj(-15)
        self.tail = b""
        self.running = 0

    def readinto(self, view):
        """Fill ``view`` (a writable byte memoryview); return the bytes written (fewer
        only where the member ends)."""
        got = 0
        while got < len(view):
            if not self.tail:
                if self.inflate.eof or not self.left:
                    break
                self.tail = self.f.read(min(PIECE, self.left))
                if not self.tail:
                    break
                self.left -= len(self.tail)
            before = len(self.tail)
            out = self.inflate.decompress(self.tail, len(view) - got)
            self.tail = self.inflate.unconsumed_tail
            if not out and len(self.tail) == before:
                # no byte consumed, none produced (a damaged stream): the member ends
                # here, and check_end or the block's length says it is cut short
                self.tail, self.left = b"", 0
                break
            view[got : got + len(out)] = out
            self.running = zlib.crc32(out, self.running)
            got += len(out)
        return got

    def check_end(self):
        """Raise :class:`zipfile.BadZipFile` unless the member ends here, whole."""
        if self.readinto(memoryview(bytearray(1))):
            raise zipfile.BadZipFile("it holds more data than its .npy header says")
        if not self.inflate.eof:
            raise zipfile.BadZipFile("its deflate stream is cut short")
        if self.running != self.crc:
            raise zipfile.BadZipFile("Bad CRC-32: its data is not what was written")


class CompressedMember(RowFile):
    """A compressed ``.npz`` member of C-ordered rows, decompressed one block at a time
    on each pass (the row file protocol of :mod:`leepfast.readers.registry`): a
    deflated one (what numpy.savez_compressed writes) by :class:`_Inflater`, any other
    through zipfile."""

    def __init__(self, path, info, dtype, shape, offset, role, begin=None):
        super().__init__(path, NAME, dtype, shape, role)
        self.member = info.filename
        self.offset = offset  # of the data within the member
        #: where the deflated bytes begin in the archive (None: read through zipfile)
        self.begin = begin
        self.compress_size, self.crc = info.compress_size, info.CRC

    def _stream(self, stack):
        """The member's bytes, from its start, opened in ``stack``."""
        if self.begin is None:
            z = stack.enter_context(zipfile.ZipFile(self.path))
            return stack.enter_context(z.open(self.member))
        f = stack.enter_context(open(self.path, "rb"))
        return _Inflater(f, self.begin, self.compress_size, self.crc)

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(first row in the member, block)``, each block decompressed into one
        block-sized buffer, reused (a block is valid until the next is asked for)."""
        self.check_open()
        rows = _driver.block_rows(
            block_size, self.n_source, self.dtype.itemsize, logits=logits
        )
        native = self.dtype.newbyteorder("=")
        k = min(rows, self.n_samples)
        buffer = np.empty((k, self.n_source), native)
        # what is inflated: the buffer itself, or the stored bytes of a byte-swapped one
        stored = buffer if self.dtype.isnative else np.empty((k, self.n_source), self.dtype)
        raw = stored.reshape(-1).view(np.uint8)
        row_bytes = self.n_source * self.dtype.itemsize
        with contextlib.ExitStack() as stack:
            try:
                m = self._stream(stack)
                m.readinto(memoryview(bytearray(self.offset)))  # its .npy header
            except DAMAGED as err:
                fail(self.role, self.path, f"member {self.member!r} is damaged ({err})")
            for start in range(0, self.n_samples, rows):
                if start:
                    self.check_unchanged()
                k = min(rows, self.n_samples - start)
                block = buffer[:k]
                try:
                    got = m.readinto(memoryview(raw[: k * row_bytes]))
                    if got == k * row_bytes and start + k == self.n_samples:
                        if self.begin is not None:
                            m.check_end()
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
                if stored is not buffer:
                    np.copyto(block, stored[:k], casting="equiv")
                yield start, block
