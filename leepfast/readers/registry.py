"""The row readers, tried in order on each file; the first that claims a file opens it.

A reader is a module with

- ``NAME``: the format's name (``PredictionFile.format``);
- ``claims(path) -> bool``: whether the file is this reader's (from its name or its
  first bytes; cheap, reads nothing else);
- ``open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None)``: the
  file checked (header, size) but not read, as a row file; ``key`` names one array of
  a file that holds several (refused by readers of one-array files).

A row file (:class:`~leepfast.readers.mapped.PredictionFile` for the readers here) has
``path``, ``format``, ``role``, ``dtype``, ``n_samples``, ``n_source`` and ``nbytes``,
and the methods ``blocks(block_size, large_views, logits)`` (yields ``(first row in the
file, block)``, each block a C-ordered native (rows, n_source) array, the file checked
against the identity it had when opened before each block), ``release()`` (drop what it
holds until asked again; one shard at a time holds a descriptor) and ``close()``.

A new format is one module with these three names, put in :data:`READERS` before the
raw reader, which claims every file no other reader does (after refusing the containers
it does not read, :mod:`leepfast.readers.containers`).
"""

import os

from . import hdf5, npy, npz, parquet, raw, safetensors, zarr_store
from ._common import file_size

#: In the order they are asked; raw last.
READERS = (npy, npz, safetensors, hdf5, parquet, raw)
#: The readers of directories (a store of chunk files is one array).
DIRECTORY_READERS = (zarr_store,)


def reader_of(path):
    """The first reader that claims ``path`` (None for a directory none claims)."""
    readers = DIRECTORY_READERS if os.path.isdir(path) else READERS
    return next((r for r in readers if r.claims(path)), None)


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """``path`` opened by its reader, as a row file."""
    reader = reader_of(path) if os.path.isdir(path) else None
    if reader is None:  # a missing path, or a directory, is said before anything
        file_size(path, role)
        reader = reader_of(path)
    return reader.open_rows(path, dtype=dtype, n_source=n_source, role=role, key=key)
