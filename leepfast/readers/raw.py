"""The raw reader: rows of ``n_source`` values of ``dtype`` (little-endian unless the
dtype says ``">"``), the number of rows taken from the file size. It claims every file
that no other reader does, after :mod:`leepfast.readers.containers` has refused the
files whose magic numbers name another format."""

import os

from . import containers
from ._common import check_dtype, check_n_source, fail, file_size, no_key, words
from .mapped import PredictionFile

NAME = "raw"


def claims(path):
    """Every file: the raw reader is the last one tried."""
    return True


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """A :class:`~leepfast.readers.mapped.PredictionFile` from raw rows of ``n_source``
    values of ``dtype``; a known container is refused first, before dtype and n_source
    are asked for."""
    containers.refuse_container(path, file_size(path, role), role)
    no_key(key, path, role)
    dtype = check_dtype(dtype, path, role)
    n_source = check_n_source(n_source, path, role)
    name = os.fspath(path)
    size = file_size(path, role)
    row = n_source * dtype.itemsize
    if size == 0:
        fail(role, name, "is empty; expected at least one row")
    if size % row:
        fail(
            role,
            name,
            f"has {size} bytes, not a multiple of the row size "
            f"{row} ({n_source} values of {dtype.name}): {size // row} rows and "
            f"{size % row} bytes left over; check dtype and {words(role)['width']}",
        )
    return PredictionFile(path, "raw", dtype, (size // row, n_source), 0, role=role)
