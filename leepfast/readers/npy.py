"""The ``.npy`` reader (format versions 1.0, 2.0, 3.0), shared by the file API, the
feature scores and the dask path.

The header is parsed here, never by ``np.load``, and nothing in a file is ever
unpickled. An object (pickled) ``.npy`` is rejected from the text of its header before
the header is evaluated; the header must be a dict literal of plain constants before
``ast.literal_eval`` sees it; the size the header claims is compared with the size of the
file before anything is mapped. The data is then mapped read-only (``np.memmap`` mode
``"r"``), advised ``MADV_SEQUENTIAL`` where the platform has it.
"""

import ast
import os
import re
import warnings

import numpy as np

from . import containers
from ._common import NPY_MAGIC, fail, file_size, is_npy, no_key, words
from .mapped import PredictionFile

NAME = "npy"

#: Longest .npy header accepted (a float array's header is about 128 bytes).
MAX_NPY_HEADER = 1 << 16

FLOAT_DESCR = re.compile(r"[<>|=]?f[248]\Z")
INT_DESCR = re.compile(r"[<>|=]?[iu][1248]\Z")
_OBJECT_DESCR = re.compile(r"""['"]descr['"]\s*:\s*['"][<>|=]?O""")


def claims(path):
    """A file this reader opens: the name ends in .npy or it starts with the magic."""
    return is_npy(path)


def _read_npy_header(f, size, role, name):
    """The header text and the offset of the data, from a .npy file open at byte 0."""
    prefix = f.read(10)
    if not prefix.startswith(NPY_MAGIC[: len(prefix)]) or len(prefix) < len(NPY_MAGIC):
        if prefix[:1] == b"\x80":
            hint = " (it looks like a Python pickle, which leepfast never loads)"
        else:
            hint = containers.container_hint(name, size, role)
        fail(
            role,
            name,
            f"not a .npy file: it does not start with the .npy magic "
            f"string b'\\x93NUMPY'{hint}",
        )
    if len(prefix) < 10:
        fail(role, name, f"truncated .npy file: {size} bytes, shorter than its preamble")
    major, minor = prefix[6], prefix[7]
    if major not in (1, 2, 3) or minor != 0:
        fail(
            role,
            name,
            f"unsupported .npy format version {major}.{minor}; expected 1.0, 2.0 or 3.0",
        )
    if major == 1:
        header_len, start = int.from_bytes(prefix[8:10], "little"), 10
    else:
        more = f.read(2)
        if len(more) < 2:
            fail(
                role, name, f"truncated .npy file: {size} bytes, shorter than its preamble"
            )
        header_len, start = int.from_bytes(prefix[8:10] + more, "little"), 12
    if header_len > MAX_NPY_HEADER:
        fail(
            role,
            name,
            f".npy header length is {header_len} bytes; expected at most "
            f"{MAX_NPY_HEADER} (a float array's header is about 128 bytes)",
        )
    if start + header_len > size:
        fail(
            role,
            name,
            f"truncated .npy file: the header claims {header_len} bytes "
            f"but the file has {size - start} after the preamble",
        )
    raw = f.read(header_len)
    try:
        text = raw.decode("utf8" if major == 3 else "latin1")
    except UnicodeDecodeError as err:
        fail(
            role,
            name,
            f".npy header is not valid UTF-8 ({err.reason} at byte {start + err.start})",
        )
    return text, start + header_len


def _is_constant(node):
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, int, bool))
    if isinstance(node, ast.Tuple):
        return all(isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts)
    return False


def _parse_npy_header(text, role, name):
    """(descr, fortran_order, shape) from a header, never evaluating anything else."""
    if _OBJECT_DESCR.search(text):
        fail(
            role,
            name,
            "holds Python objects (dtype object, stored as a pickle); "
            "leepfast never unpickles files: save a float array instead",
        )
    try:
        with warnings.catch_warnings():  # a file's odd escapes are not our warning
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            # as NumPy's own reader parses it: a NUL byte, for one, is refused
            tree = ast.parse(text.lstrip(" \t"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    body = getattr(tree, "body", None)
    if (
        not isinstance(body, ast.Dict)
        or not all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) for k in body.keys
        )
        or not all(_is_constant(v) for v in body.values)
    ):
        shown = text.strip()[:80]
        fail(role, name, f".npy header is not a dict of plain constants: {shown!r}")
    header = ast.literal_eval(body)
    if set(header) != {"descr", "fortran_order", "shape"}:
        fail(
            role,
            name,
            f".npy header keys are {sorted(header)}; expected "
            f"['descr', 'fortran_order', 'shape']",
        )
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        fail(role, name, f".npy header 'descr' is {descr!r}; expected a dtype string")
    if not isinstance(fortran, bool):
        fail(
            role,
            name,
            f".npy header 'fortran_order' is {fortran!r}; expected True or False",
        )
    if not isinstance(shape, tuple) or any(d < 0 for d in shape):
        fail(
            role,
            name,
            f".npy header 'shape' is {shape!r}; expected a tuple of non-negative integers",
        )
    return descr, fortran, shape


def header_shape(path, role):
    """The shape a .npy file's header gives (the header checked, nothing else read)."""
    name = os.fspath(path)
    with open(path, "rb") as f:
        text, _ = _read_npy_header(f, file_size(path, role), role, name)
    return _parse_npy_header(text, role, name)[2]


def open_header(path, role, allowed, kinds, ndim):
    """Check a .npy file; return (dtype, shape, fortran_order, data offset)."""
    name = os.fspath(path)
    size = file_size(path, role)
    with open(path, "rb") as f:
        return read_header(f, size, role, name, allowed, kinds, ndim)


def read_header(f, size, role, name, allowed, kinds, ndim):
    """Check the .npy stream ``f`` (at its byte 0) of ``size`` bytes, a file or a member
    of an archive; return (dtype, shape, fortran_order, data offset in ``f``)."""
    text, offset = _read_npy_header(f, size, role, name)
    descr, fortran, shape = _parse_npy_header(text, role, name)
    if not allowed.match(descr):
        fail(role, name, f"holds dtype {descr!r}; expected {kinds}")
    dtype = np.dtype(descr)
    if len(shape) != ndim:
        expected = words(role)["shape"] if ndim == 2 else "(n_samples,)"
        fail(role, name, f"holds an array of shape {shape}; expected shape {expected}")
    data = dtype.itemsize
    for d in shape:
        data *= d
    if size - offset != data:
        how = "truncated" if size - offset < data else "longer than its header says"
        fail(
            role,
            name,
            f"{how}: the header says shape {shape} of {dtype}, "
            f"{data} bytes of data, but the file has {size - offset} bytes after "
            f"its {offset}-byte header",
        )
    if data == 0:
        fail(
            role,
            name,
            f"holds no data (shape {shape}); expected at least one "
            f"sample" + (f" and one {words(role)['column']}" if ndim == 2 else ""),
        )
    return dtype, shape, fortran, offset


def rows_kinds(role):
    """What a file of rows may hold, as messages say it."""
    return f"float16, float32 or float64 {role}"


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """A :class:`~leepfast.readers.mapped.PredictionFile` of a .npy file of float16/32/64
    rows; ``dtype`` and ``n_source``, when given, must agree with the header."""
    found, shape, fortran, offset = open_header(
        path, role, FLOAT_DESCR, rows_kinds(role), 2
    )
    no_key(key, path, role)
    f = PredictionFile(path, "npy", found, shape, offset, fortran, role=role)
    return f.given(dtype, n_source)
