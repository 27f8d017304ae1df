"""What every reader shares: where a message says it is, one way to fail, the size of a
file, and whether a file is a ``.npy``."""

import os

import numpy as np

from .._checks import positive_int
from .._errors import FileFormatError

NPY_MAGIC = b"\x93NUMPY"

#: How messages name what the rows are, by role: the rows, their raw files, the argument
#: that gives a row's width, the array's shape, one column and the columns.
WORDS = {
    "predictions": {
        "raw files": "raw (non-.npy) prediction files",
        "width": "n_source",
        "shape": "(n_samples, n_source)",
        "column": "source class",
        "columns": "source classes",
    },
    "features": {
        "raw files": "raw (non-.npy) feature files",
        "width": "n_features",
        "shape": "(n_samples, n_features)",
        "column": "feature",
        "columns": "features",
    },
}


def words(role):
    """The words of :data:`WORDS` for ``role`` (predictions' for any other role)."""
    return WORDS.get(role, WORDS["predictions"])


def where(role, name):
    return f"{role} (file {name})"


def fail(role, name, message):
    raise FileFormatError(f"{where(role, name)}: {message}", role)


def file_size(path, role):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{role}: no such file or directory: {os.fspath(path)!r}"
        ) from None
    if not os.path.isfile(path):
        raise FileFormatError(f"{role}: expected a regular file, got {os.fspath(path)!r}")
    return st.st_size


def is_npy(path):
    """True if the name ends in .npy or the file starts with the .npy magic string."""
    if os.fspath(path).lower().endswith(".npy"):
        return True
    with open(path, "rb") as f:
        return f.read(len(NPY_MAGIC)) == NPY_MAGIC


def _not_npy(path):
    if path is None:
        return ""
    return (
        f"; {os.fspath(path)} is one (its name does not end in .npy and it does not "
        f"start with the .npy magic string)"
    )


def check_dtype(dtype, path=None, role="predictions"):
    """The dtype of raw rows: float16/32/64, little-endian unless it says ``">"``."""
    if dtype is None:
        w = words(role)
        raise TypeError(
            f"dtype: {w['raw files']} need a dtype "
            f"(float16, float32 or float64) and {w['width']}" + _not_npy(path)
        )
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"dtype: expected float16, float32 or float64, got {dtype!r}"
        ) from None
    if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
        raise TypeError(f"dtype: expected float16, float32 or float64, got {dt}")
    return dt if dt.byteorder == ">" else dt.newbyteorder("<")


def check_n_source(n_source, path=None, role="predictions"):
    """The number of values per raw row (named n_source, or n_features for features)."""
    width = words(role)["width"]
    if n_source is None:
        raise TypeError(
            f"{width}: {words(role)['raw files']} need {width}, the "
            "number of values per row" + _not_npy(path)
        )
    return positive_int(n_source, width, allow_none=False)


def agree(f, dtype, n_source, role):
    """Refuse a ``dtype`` or ``n_source`` given for a file whose header says otherwise."""
    given = None if dtype is None else check_dtype(dtype, role=role)
    if given is not None and given.name != f.stored:
        fail(role, f.path, f"holds {f.stored}, but dtype={given.name} was given")
    if n_source is not None and check_n_source(n_source, role=role) != f.n_source:
        w = words(role)
        fail(
            role,
            f.path,
            f"has {f.n_source} {w['columns']}, but {w['width']}={n_source} was given",
        )


def no_key(key, path, role):
    """Refuse ``key`` for a file that holds one array (a .npy, a raw dump)."""
    if key is not None:
        raise TypeError(
            f"key: {role} (file {os.fspath(path)}) holds one array; key= names an "
            f"array of a .npz or a tensor of a safetensors file"
        )


def choose(names, key, role, name, what):
    """``key`` among the ``names`` of a file's arrays (the only one when ``key`` is
    None); ``what`` is their plural ("arrays", "tensors", "datasets")."""
    shown = ", ".join(repr(k) for k in names[:8]) + (", ..." if len(names) > 8 else "")
    if key is None:
        if len(names) == 1:
            return names[0]
        raise TypeError(
            f"key: {role} (file {name}) holds {len(names)} {what} ({shown}); name the "
            f"one to read with key="
        )
    if not isinstance(key, str):
        raise TypeError(f"key: expected a str, got {type(key).__name__}")
    if key not in names:
        fail(role, name, f"holds no {what[:-1]} {key!r}; it holds {shown}")
    return key


#: The float dtypes of rows, either byte order.
FLOATS = frozenset(np.dtype(t).newbyteorder(o) for t in ("f2", "f4", "f8") for o in "<>=")


def check_array(role, where, dtype, shape):
    """Refuse an array of rows that is not 2-D float16/32/64 with data."""
    if np.dtype(dtype) not in FLOATS:
        fail(
            role, where, f"holds dtype {dtype}; expected float16, float32 or float64 {role}"
        )
    if len(shape) != 2:
        fail(role, where, f"has shape {shape}; expected shape {words(role)['shape']}")
    if 0 in shape:
        fail(
            role,
            where,
            f"holds no data (shape {shape}); expected at least one sample and one "
            f"{words(role)['column']}",
        )
