"""The Zarr reader (needs ``zarr``: ``pip install "leepfast[formats]"``): one 2-D float
array of a Zarr store (a directory; v3, or v2 as zarr opens it), read block by block,
blocks aligned to the array's chunks so each chunk is decompressed once per pass.

``key`` is the array's path in a group store (``"model/probs"``); a store that is one
array needs none. The store is checked for change through its array's metadata file
(rewritten whenever the array is created again).
"""

import os

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
    return rows.given(dtype, n_source, key or None)


class Store(RowFile):
    """A 2-D array of a Zarr store, read in blocks of whole chunks."""

    def __init__(self, path, array, dtype, shape, chunks, role):
        self.array_path, self.chunks = array, chunks
        super().__init__(path, NAME, dtype, shape, role)

    def _identity(self):
        """The identity of the array's metadata file (a store is a directory)."""
        folder = os.path.join(self.path, *self.array_path.split("/"))
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
