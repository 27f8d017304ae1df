"""The Zarr reader (needs ``zarr``: ``pip install "leepfast[formats]"``): one 2-D float
array of a Zarr store (a directory; v3, or v2 as zarr opens it), read block by block,
blocks aligned to the array's chunks so each chunk is decompressed once per pass.

When the chunks are zstd or blosc frames of raw little-endian C-ordered rows (zarr 3's
default codecs, ``bytes`` then ``zstd``; v2's zstd or blosc compressor without filters)
and hold whole rows, each chunk file is read into one reused buffer and decompressed
straight into the block (numcodecs' decoder, as zarr uses), its size checked against
the frame's header first: zarr's own path reads, decodes and copies each chunk into
fresh arrays, and took 2-2.5x the decompression. Every other store is read through
zarr.

``key`` is the array's path in a group store (``"model/probs"``); a store that is one
array needs none. The store is checked for change through its array's metadata file
(rewritten whenever the array is created again).
"""

import os
import struct
import sys

import numpy as np

from .. import _driver
from ._common import check_array, choose, fail
from .containers import ZARR_MARKERS
from .mapped import RowFile

NAME = "zarr"


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError(
            "reading Zarr stores needs zarr: pip install zarr (or the leepfast[formats] "
            "extra)"
        ) from None
    return zarr


def claims(path):
    """A directory with Zarr metadata (or a name ending in .zarr)."""
    from .containers import is_zarr_store

    return is_zarr_store(path)


def _arrays(zarr, group, prefix=""):
    """Paths of every array below ``group``, depth first, sorted."""
    found = []
    for name, member in sorted(group.members()):
        path = f"{prefix}{name}"
        if isinstance(member, zarr.Array):
            found.append(path)
        else:
            found += _arrays(zarr, member, path + "/")
    return found


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """The array ``key`` of a Zarr store (the store itself when it is one array)."""
    zarr = _zarr()
    name = os.fspath(path)
    try:
        node = zarr.open(name, mode="r")
    except Exception as err:  # zarr raises many kinds for a broken store
        fail(role, name, f"cannot be opened as a Zarr store ({type(err).__name__}: {err})")
    if isinstance(node, zarr.Array):
        if key is not None:
            raise TypeError(
                f"key: {role} (file {name}) is one Zarr array; key= names an array of "
                f"a Zarr group"
            )
        array, key = node, ""
    else:
        names = _arrays(zarr, node)
        key = choose(names, None if key is None else key.strip("/"), role, name, "arrays")
        array = node[key]
    where = f"{name}[{key}]" if key else name
    found = np.dtype(array.dtype)
    check_array(role, where, found, array.shape)
    rows = Store(path, key, found, array.shape, array.chunks, role)
    rows.codec = _raw_chunks_codec(array)
    return rows.given(dtype, n_source, key or None)


#: The compressors whose frames :meth:`Store.blocks` decodes itself.
CODECS = ("zstd", "blosc")


def _raw_chunks_codec(array):
    """ "zstd" or "blosc" if every chunk is one frame of it over raw little-endian
    C-ordered rows, as wide as the array, on a regular grid (what :meth:`Store.blocks`
    decodes itself); None otherwise."""
    if sys.byteorder != "little" or array.chunks[1] != array.shape[1]:
        return None
    try:
        meta = array.metadata.to_dict()
    except Exception:  # noqa: BLE001 - a store zarr describes otherwise
        return None
    if meta.get("zarr_format") == 3:
        codecs = list(meta.get("codecs") or ())
        names = [c.get("name") if isinstance(c, dict) else None for c in codecs]
        endian = (codecs[0].get("configuration") or {}).get("endian") if codecs else None
        grid = (meta.get("chunk_grid") or {}).get("name")
        ok = (
            len(names) == 2
            and names[0] == "bytes"
            and names[1] in CODECS
            and endian in ("little", None)
            and grid == "regular"
            and not meta.get("storage_transformers")
        )
        return names[1] if ok else None
    if meta.get("zarr_format") == 2:
        compressor = meta.get("compressor") or {}
        ok = (
            compressor.get("id") in CODECS
            and not meta.get("filters")
            and meta.get("order") == "C"
            and str(meta.get("dtype", "")).startswith("<")
        )
        return compressor["id"] if ok else None
    return None


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_content_size(frame):
    """The decompressed size a zstd frame's header states, or None when it has none (or
    the bytes are not a zstd frame)."""
    head = bytes(frame[:18])
    if len(head) < 6 or head[:4] != _ZSTD_MAGIC:
        return None
    descriptor = head[4]
    single = descriptor >> 5 & 1
    at = 5 + (not single) + (0, 1, 2, 4)[descriptor & 3]
    width = (single, 2, 4, 8)[descriptor >> 6]
    if not width or len(head) < at + width:
        return None
    size = int.from_bytes(head[at : at + width], "little")
    return size + 256 if width == 2 else size


def _blosc_content_size(frame, size):
    """The decompressed size a blosc frame's header states, or None when its header
    (16 bytes: versions, flags, type size, then uint32 sizes) does not describe a frame
    of ``size`` bytes."""
    if size < 16:
        return None
    nbytes, _, cbytes = struct.unpack("<III", bytes(frame[4:16]))
    return nbytes if cbytes == size else None


#: The decompressed size of a frame of each codec, from its header.
_CONTENT_SIZE = {
    "zstd": lambda frame, size: _zstd_content_size(frame),
    "blosc": _blosc_content_size,
}


class Store(RowFile):
    """A 2-D array of a Zarr store, read in blocks of whole chunks."""

    #: "zstd" or "blosc" when the chunks are its frames of raw rows, decoded here (see
    #: the module docstring); None: read through zarr
    codec = None

    def __init__(self, path, array, dtype, shape, chunks, role):
        self.array_path, self.chunks = array, chunks
        super().__init__(path, NAME, dtype, shape, role)

    def _folder(self):
        return os.path.join(self.path, *self.array_path.split("/"))

    def _identity(self):
        """The identity of the array's metadata file (a store is a directory)."""
        folder = self._folder()
        for marker in ZARR_MARKERS:
            meta = os.path.join(folder, marker)
            if os.path.isfile(meta):
                st = os.stat(meta)
                return st.st_size, st.st_mtime_ns, st.st_ino
        raise OSError(f"no Zarr metadata in {folder}")

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(first row, block)``, whole chunks per block."""
        self.check_open()
        rows = _driver.block_rows(
            block_size, self.n_source, self.dtype.itemsize, logits=logits
        )
        if block_size is None:
            step = self.chunks[0]
            rows = max(step, rows // step * step)  # whole chunks: each read once
        node = _zarr().open(self.path, mode="r")
        array = node[self.array_path] if self.array_path else node
        native = self.dtype.newbyteorder("=")
        if self.codec is not None and rows % self.chunks[0] == 0:
            yield from self._decoded_blocks(array, rows, native)
            return
        for start in range(0, self.n_samples, rows):
            if start:
                self.check_unchanged()
            try:
                block = np.asarray(array[start : start + rows])
            except Exception as err:  # zarr and its codecs raise many kinds
                fail(
                    self.role,
                    self.path,
                    f"rows {start} to {min(start + rows, self.n_samples) - 1} cannot "
                    f"be read ({type(err).__name__}: {err})",
                )
            yield start, block.astype(native, copy=False)

    def _decoded_blocks(self, array, rows, native):
        """Blocks of ``rows`` rows (whole chunks), each chunk file read into one reused
        buffer and decompressed straight into the block; a chunk file that is absent
        (never written: the fill value) is read through zarr."""
        import numcodecs

        codec = numcodecs.get_codec({"id": self.codec})
        content_size = _CONTENT_SIZE[self.codec]
        step = self.chunks[0]
        chunk = step * self.n_source * self.dtype.itemsize
        largest = chunk + chunk // 128 + (1 << 16)  # above any frame of a chunk
        # whole chunks: the last one is stored whole, past the last row
        buffer = np.empty(
            (-(-min(rows, self.n_samples) // step) * step, self.n_source), native
        )
        flat = buffer.reshape(-1).view(np.uint8)
        scratch = bytearray(0)
        folder = self._folder()
        for start in range(0, self.n_samples, rows):
            if start:
                self.check_unchanged()
            k = min(rows, self.n_samples - start)
            for first in range(start, start + k, step):
                at = (first - start) * self.n_source * self.dtype.itemsize
                key = array.metadata.encode_chunk_key((first // step, 0))
                name = os.path.join(folder, *key.split("/"))
                where = (
                    f"chunk {key} (rows {first} to {min(first + step, self.n_samples) - 1})"
                )
                try:
                    f = open(name, "rb")
                except FileNotFoundError:  # never written: zarr gives its fill value
                    lo, m = first - start, min(step, self.n_samples - first)
                    buffer[lo : lo + m] = array[first : first + m]
                    continue
                with f:
                    size = os.fstat(f.fileno()).st_size
                    if size > largest:
                        fail(
                            self.role,
                            self.path,
                            f"{where} is {size} bytes, more than a {self.codec} frame "
                            f"of its {chunk} bytes can be",
                        )
                    if len(scratch) < size:
                        scratch = bytearray(size)
                    frame = memoryview(scratch)[:size]
                    got = f.readinto(frame)
                stated = content_size(frame[:got], got)
                if got != size or stated != chunk:
                    says = "" if stated is None else f" (its header says {stated})"
                    fail(
                        self.role,
                        self.path,
                        f"{where} is not a {self.codec} frame of its {chunk} bytes{says}",
                    )
                try:
                    codec.decode(frame, out=flat[at : at + chunk])
                except Exception as err:  # noqa: BLE001 - numcodecs' RuntimeError, ...
                    fail(
                        self.role,
                        self.path,
                        f"{where} cannot be read ({type(err).__name__}: {err})",
                    )
            yield start, buffer[:k]
