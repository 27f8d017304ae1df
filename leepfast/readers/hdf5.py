"""The HDF5 reader (needs ``h5py``: ``pip install "leepfast[formats]"``): one 2-D float
dataset. A contiguous dataset (HDF5's default layout: one run of raw values) is
memory-mapped at its offset and streamed as a .npy is, at the same speed; so is a
chunked dataset without filters whose chunks hold whole rows (each chunk is then raw
rows at an offset of the file: the chunks are mapped in runs, one after another). A
compressed (or otherwise filtered) dataset, or one chunked across its columns, is read
block by block through h5py, blocks aligned to its chunks.

``key`` is the dataset's path in the file (``"preds"``, ``"model/logits"``); a file with
one dataset needs none. Each pass opens the file and reads its blocks with
``read_direct`` into one block-sized buffer, so the memory stays one block whatever
the dataset's size; a chunked dataset is read in whole chunks (the block's rows are a
multiple of the chunk's), so each chunk is decompressed once per pass.
"""

import os

import numpy as np

from .. import _driver
from . import containers
from ._common import check_array, choose, fail, file_size
from .mapped import PredictionFile, RowFile

NAME = "hdf5"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "reading HDF5 files needs h5py: pip install h5py (or the leepfast[formats] "
            "extra)"
        ) from None
    return h5py


def claims(path):
    """A file with an HDF5 signature (at 0, or after a user block)."""
    return containers.is_hdf5(path)


def _datasets(h5py, f):
    found = []
    f.visititems(
        lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def _contiguous_offset(ds, size):
    """The byte offset of a dataset stored as one run of raw values in the file (not
    chunked, hence unfiltered; not external or virtual; allocated, and inside the
    file), which can be memory-mapped as a .npy is; None otherwise."""
    if ds.chunks is not None or ds.is_virtual or ds.external:
        return None
    offset = ds.id.get_offset()
    if offset is None or offset + ds.size * ds.dtype.itemsize > size:
        return None
    return offset


def _chunk_runs(ds, size):
    """The runs ``[(first row, rows, byte offset), ...]`` of a chunked dataset whose
    chunks are raw rows (no filter, chunks as wide as the dataset, every chunk written,
    each of its full size and inside the file), adjacent chunks merged when the file
    stores them one after another; None otherwise (read through h5py)."""
    if ds.chunks is None or ds.is_virtual or ds.external:
        return None
    step, width = ds.chunks
    n, n_source = ds.shape
    if width != n_source or ds.id.get_create_plist().get_nfilters():
        return None
    chunk = step * n_source * ds.dtype.itemsize
    infos = []
    try:
        if hasattr(ds.id, "chunk_iter"):  # HDF5 1.12.3+: one call for the index
            ds.id.chunk_iter(infos.append)
        else:
            infos = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    except (RuntimeError, ValueError, OSError):
        return None
    infos.sort(key=lambda info: info.chunk_offset)
    if len(infos) != -(-n // step):  # some chunk never written (its fill value)
        return None
    runs = []
    for k, info in enumerate(infos):
        if (
            tuple(info.chunk_offset) != (k * step, 0)
            or info.filter_mask
            or info.size != chunk
            or info.byte_offset is None
            or info.byte_offset + chunk > size
        ):
            return None
        rows = min(step, n - k * step)
        first, count, offset = runs[-1] if runs else (0, 0, None)
        if runs and offset + count * (chunk // step) == info.byte_offset:
            runs[-1] = (first, count + rows, offset)
        else:
            runs.append((k * step, rows, info.byte_offset))
    return runs


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """The dataset ``key`` of an HDF5 file (the only one when ``key`` is None)."""
    h5py = _h5py()
    name = os.fspath(path)
    file_size(path, role)
    try:
        f = h5py.File(name, "r")
    except OSError as err:
        fail(role, name, f"cannot be opened as HDF5 ({err})")
    with f:
        names = _datasets(h5py, f)
        if isinstance(key, str):
            key = key.lstrip("/")  # "/model/probs" is "model/probs"
        key = choose(names, key, role, name, "datasets")
        ds = f[key]
        where = f"{name}[{key}]"
        check_array(role, where, ds.dtype, ds.shape)
        size = os.stat(name).st_size
        offset = _contiguous_offset(ds, size)
        runs = None if offset is not None else _chunk_runs(ds, size)
        if runs is not None:
            offset = runs[0][2]
        if offset is None:
            rows = Dataset(path, ds.name, ds.dtype, ds.shape, ds.chunks, role)
        else:  # mapped like a .npy: views with a compiled backend, no copy
            rows = PredictionFile(
                path, NAME, ds.dtype, ds.shape, offset, role=role, runs=runs
            )
    return rows.given(dtype, n_source, key)


class Dataset(RowFile):
    """A 2-D dataset of an HDF5 file, read in blocks of whole chunks."""

    def __init__(self, path, dataset, dtype, shape, chunks, role):
        super().__init__(path, NAME, dtype, shape, role)
        self.dataset, self.chunks = dataset, chunks

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(first row, block)``, each block read into one reused buffer (valid
        until the next block is asked for)."""
        self.check_open()
        rows = _driver.block_rows(
            block_size, self.n_source, self.dtype.itemsize, logits=logits
        )
        if self.chunks is not None and block_size is None:
            step = self.chunks[0]
            rows = max(step, rows // step * step)  # whole chunks: each read once
        native = self.dtype.newbyteorder("=")
        buffer = np.empty((min(rows, self.n_samples), self.n_source), native)
        with _h5py().File(self.path, "r") as f:
            ds = f[self.dataset]
            for start in range(0, self.n_samples, rows):
                if start:
                    self.check_unchanged()
                k = min(rows, self.n_samples - start)
                block = buffer[:k]
                try:
                    ds.read_direct(block, np.s_[start : start + k], np.s_[0:k])
                except OSError as err:  # a damaged chunk, a filter that fails
                    fail(
                        self.role,
                        self.path,
                        f"dataset {self.dataset!r} cannot be read in rows {start} to "
                        f"{start + k - 1} ({err})",
                    )
                yield start, block
