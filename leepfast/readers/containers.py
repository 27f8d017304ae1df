"""Containers recognised by their magic numbers: what no row reader reads is refused.

The row readers (:mod:`leepfast.readers.registry`) read ``.npy``, ``.npz``,
``.safetensors``, HDF5, Parquet and Zarr, and take any other file as raw rows. Before
that, :func:`refuse_container` recognises the formats no reader reads (``torch.save``
files, pickles, Arrow/Feather, compressed files) and, for labels, every container, from
their first and last bytes (nothing is parsed beyond a zip's list of member names and a
safetensors JSON header; nothing is ever unpickled), and raises one
:class:`FileFormatError` naming the file and its format, with the way to get a .npy or
an array out of it; otherwise their bytes would be scored as floats.

A raw dump of floats is never refused by mistake: every signature tested here is either
long (8 bytes and more), or checked at both ends of the file, or confirmed by a structure
(a zip's central directory, a JSON header) that float data does not form.
"""

import json
import os
import struct
import zipfile

from .._errors import FileFormatError

#: Bytes read from the start (and from the end) of a file to recognise its format.
HEAD = 64
#: Longest safetensors JSON header parsed to confirm the format.
MAX_SAFETENSORS_HEADER = 1 << 24

_HDF5 = b"\x89HDF\r\n\x1a\n"
_TORCH_LEGACY = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_NPY = b"\x93NUMPY"
#: The opcodes a pickle of protocol 2 to 5 starts with after its PROTO opcode: FRAME,
#: the globals, the empty containers, MARK, NONE, the booleans, ints, strings, bytes.
_PICKLE_THIRD = {bytes([c]) for c in b"\x95c\x93}](N\x88\x89KMJ\x8a\x8bXU\x8cBC\x8eGF"}

_ARRAY = "pass the array (or tensor) to leepfast, or save it with numpy.save"
_ADVICE = {
    "npz": "load it with numpy.load(path)[name] (never unpickled) and save each "
    "array with numpy.save, or pass the array",
    "torch": "leepfast never unpickles files: torch.load it yourself if you trust "
    "it, then " + _ARRAY,
    "pickle": "leepfast never unpickles files: load it yourself if you trust it, "
    "then " + _ARRAY,
    "safetensors": "load it with safetensors.numpy.load_file(path)[name], then " + _ARRAY,
    "hdf5": "read the dataset with h5py (h5py.File(path)[name][...]), then " + _ARRAY,
    "parquet": "read the column with pyarrow or pandas, then " + _ARRAY,
    "arrow": "read it with pyarrow.feather or pyarrow.ipc, then " + _ARRAY,
    "zip": "extract its members",
    "compressed": "decompress it first",
}


#: Formats the row readers read, named by their extension (labels still refuse them).
_READ_BY_NAME = {
    "npz": ".npz",
    "safetensors": ".safetensors",
    "hdf5": ".h5",
    "parquet": ".parquet",
}


def _zip_members(path):
    """The member names of a zip archive (its central directory only), or None."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def is_safetensors(head, path, size):
    """True if the file opens with a safetensors header: a little-endian uint64 length
    n, then n bytes of a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if n < 2 or 8 + n > size or n > MAX_SAFETENSORS_HEADER:
        return False
    with open(path, "rb") as f:
        f.seek(8)
        text = f.read(n)
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def is_parquet(path):
    """True if the file opens and ends with Parquet's magic (and has room for a footer)."""
    size = os.path.getsize(path)
    if size < 12:
        return False
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(size - 4)
        return head == b"PAR1" and f.read(4) == b"PAR1"


def is_hdf5(path):
    """True if the file has an HDF5 superblock signature, at 0 or after a user block."""
    with open(path, "rb") as f:
        if f.read(8) == _HDF5:
            return True
        for offset in (512, 1024, 2048):
            f.seek(offset)
            if f.read(8) == _HDF5:
                return True
    return False


def _describe(path, size, role):
    """(kind, description) of a known container format, or None."""
    with open(path, "rb") as f:
        head = f.read(HEAD)
        f.seek(max(size - 8, 0))
        end = f.read(8)
        blocks = []  # an HDF5 superblock may follow a user block of 512, 1024, 2048 bytes
        for offset in (512, 1024, 2048):
            if size >= offset + 8:
                f.seek(offset)
                blocks.append(f.read(8))
    name = os.fspath(path).lower()
    if head.startswith(_NPY):
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        members = _zip_members(path)
        if members is not None:
            if any(m == "data.pkl" or m.endswith("/data.pkl") for m in members):
                return "torch", "a PyTorch file saved by torch.save (a zip with a pickle)"
            if members and all(m.endswith(".npy") for m in members):
                shown = ", ".join(repr(m[:-4]) for m in members[:5])
                more = ", ..." if len(members) > 5 else ""
                return "npz", f"a NumPy .npz archive (arrays {shown}{more})"
            return "zip", "a zip archive"
    if head.startswith(_TORCH_LEGACY):
        return "torch", "a PyTorch file saved by torch.save (legacy pickle format)"
    if (
        head[:1] == b"\x80"
        and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        and head[2:3] in _PICKLE_THIRD
        and end.endswith(b".")  # a pickle's last opcode is STOP
    ):
        return "pickle", f"a Python pickle (protocol {head[1]})"
    if head.startswith(_HDF5) or _HDF5 in blocks:
        return "hdf5", "an HDF5 file"
    # magic, at least a 4-byte footer length, magic
    if size >= 12 and head.startswith(b"PAR1") and end.endswith(b"PAR1"):
        return "parquet", "a Parquet file"
    if size >= 18 and head.startswith(b"ARROW1") and end.endswith(b"ARROW1"):
        return "arrow", "an Arrow IPC (Feather v2) file"
    if size >= 12 and head.startswith(b"FEA1") and end.endswith(b"FEA1"):
        return "arrow", "a Feather (v1) file"
    if is_safetensors(head, path, size):
        return "safetensors", "a safetensors file"
    if head.startswith((b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\x00")):
        return "compressed", "a compressed file (zstd or xz)"
    # short signatures: only where float data cannot be meant (a text label file) or
    # where the name says so
    short = role == "labels" or name.endswith((".gz", ".bz2", ".tgz"))
    if short and head.startswith(b"\x1f\x8b\x08"):
        return "compressed", "a gzip-compressed file"
    if short and head.startswith(b"BZh") and head[3:4].isdigit():
        return "compressed", "a bzip2-compressed file"
    return None


def _message(role, path, description, kind):
    what = "integer labels as .npy or text" if role == "labels" else "predictions"
    reads = (
        ".npy files and text files with one integer per line"
        if role == "labels"
        else ".npy files and raw binary dumps"
    )
    return (
        f"{role} (file {os.fspath(path)}): is {description}, not {what}; leepfast "
        f"reads {reads}: {_ADVICE[kind]}"
    )


def refuse_container(path, size, role):
    """Raise :class:`FileFormatError` if ``path`` is a known container (see the module
    docstring); return None for anything else (a .npy file, raw data, text)."""
    found = _describe(path, size, role)
    if found is not None:
        kind, description = found
        raise FileFormatError(_message(role, path, description, kind), role)


def container_hint(path, size, role):
    """For a file that should have been a .npy: ``" (it is <format>: <advice>)"``, or
    ``""`` when its format is not a known container."""
    try:
        found = _describe(path, size, role)
    except OSError:
        return ""
    if found is None:
        return ""
    kind, description = found
    advice = _ADVICE[kind]
    if role != "labels" and kind in _READ_BY_NAME:  # leepfast reads it by its own name
        advice = f"rename it to end in {_READ_BY_NAME[kind]}, which leepfast reads"
    return f" (it is {description}: {advice})"


#: The metadata files of a Zarr store (v2 array and group, v3).
ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")


def is_zarr_store(path):
    """A directory that is a Zarr store (v2 ``.zarray``/``.zgroup``, v3 ``zarr.json``,
    or a name ending in ``.zarr``): its chunk files are compressed pieces of an array,
    not shards of rows."""
    p = os.fspath(path)
    return os.path.isdir(p) and (
        p.rstrip("/\\").lower().endswith(".zarr")
        or any(os.path.isfile(os.path.join(p, m)) for m in ZARR_MARKERS)
    )
