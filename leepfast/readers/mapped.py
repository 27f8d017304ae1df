"""A file of prediction (or feature) rows memory-mapped at an offset: what the ``.npy``
and the raw readers open, and the row file protocol every reader's files follow
(:mod:`leepfast.readers.registry`)."""

import errno
import mmap
import os
import sys

import numpy as np

from .. import _driver
from .._tensors import BFLOAT16
from ._common import agree, fail, where


class RowFile:
    """What every reader's file of rows has: its identity when opened (checked again
    before each block), the role its messages name, and open/closed state. The
    readers' classes add ``blocks`` (see :mod:`leepfast.readers.registry`).

    Attributes
    ----------
    path : str
    format : str
        The reader's name.
    dtype : numpy.dtype
        float16, float32 or float64, either byte order, or ``_tensors.BFLOAT16`` (the
        bit patterns of bfloat16 values, widened in the kernels): the blocks' dtype.
    stored : str
        The type of the values in the file: the dtype's name, or "bfloat16".
    n_samples, n_source : int
    nbytes : int
        Bytes of row data in the file (without headers).
    """

    fortran_order = False  # blocks come as C-ordered rows (a map may say otherwise)
    key = None  # the array of a file holding several, as key= names it

    def __init__(self, path, format, dtype, shape, role, stored=None):
        self.path = os.fspath(path)
        self.format, self.role = format, role
        self.dtype = dtype
        self.stored = stored or dtype.name
        self.n_samples, self.n_source = shape
        self.nbytes = self.n_samples * self.n_source * dtype.itemsize
        #: (size, mtime_ns, inode) when opened: checked again before each block
        self.identity = self._identity()
        self._closed = False

    def given(self, dtype, n_source, key=None):
        """This file, its ``key`` recorded, once ``dtype`` and ``n_source`` (when the
        caller gave them) agree with what it holds: the last step of every reader."""
        self.key = key
        agree(self, dtype, n_source, self.role)
        return self

    def _identity(self):
        """(size, mtime_ns, inode) of the file (of a store: its metadata file)."""
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns, st.st_ino

    def check_unchanged(self):
        """Refuse a file whose size, modification time or inode differ from those seen
        when it was opened (a re-dumping job replaced or rewrote it)."""
        try:
            now = self._identity()
        except OSError:
            now = None
        if now != self.identity:
            fail(
                self.role,
                self.path,
                "changed since it was opened (size, modification time or inode "
                "differ): was it re-dumped? Score it again from the start",
            )

    def check_open(self):
        """Refuse a closed file; then check that it is unchanged."""
        if self._closed:
            raise ValueError(
                f"{self.role}: {self.path} was closed; open the {self.role} again"
            )
        self.check_unchanged()

    def release(self):
        """Drop what is held between passes (a map, a descriptor)."""

    def close(self):
        """Close for good."""
        self.release()
        self._closed = True

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.path!r}, {self.format}, {self.stored}, "
            f"shape=({self.n_samples}, {self.n_source}))"
        )


class PredictionFile(RowFile):
    """One file of rows, memory-mapped read-only at an offset, or in runs of whole rows
    at several offsets (:class:`RowFile`'s attributes, and):

    Attributes
    ----------
    fortran_order : bool
    offset : int
        Where the data (its first run) begins in the file.
    runs : list of (first row, rows, offset), or None
        The runs of rows stored one after another, when the data is not one run (the
        chunks of an HDF5 dataset, where the file holds something between them).
    array : ndarray of shape (n_samples, n_source), or None
        A read-only view of the memory map (None when the data is in several runs).
    """

    def __init__(
        self,
        path,
        format,
        dtype,
        shape,
        offset,
        fortran_order=False,
        role="predictions",
        bfloat16=False,
        runs=None,
    ):
        super().__init__(
            path,
            format,
            BFLOAT16 if bfloat16 else dtype,
            shape,
            role,
            stored="bfloat16" if bfloat16 else None,
        )
        #: what is mapped: the dtype (little-endian bfloat16 bits are BFLOAT16 where
        #: that is the native order, and copied to it elsewhere)
        little = sys.byteorder == "little"
        self._stored = (BFLOAT16 if little else np.dtype("<u2")) if bfloat16 else dtype
        self.fortran_order = fortran_order
        self.offset = offset
        self.runs = runs if runs is not None and len(runs) > 1 else None
        self._map = self._pieces = None

    def _mapped(self):
        """``[(first row, view of its rows), ...]``, one per run, mapped on first use (a
        map holds a descriptor: the driver maps one shard at a time and releases it
        after its blocks); None once the file is closed."""
        if self._pieces is None and not self._closed:
            if self.runs is None:
                shape = (self.n_samples, self.n_source)
                self._map = map_data(
                    self.path,
                    self._stored,
                    shape,
                    self.offset,
                    self.fortran_order,
                    self.role,
                )
                self._pieces = [(0, self._map.view(np.ndarray))]
            else:  # one map from the first run to the end of the last
                row = self.n_source * self._stored.itemsize
                first = min(offset for _, _, offset in self.runs)
                end = max(offset + n * row for _, n, offset in self.runs)
                self._map = map_data(
                    self.path, np.uint8, (end - first,), first, False, self.role
                )
                raw = self._map.view(np.ndarray)
                self._pieces = [
                    (
                        start,
                        raw[offset - first : offset - first + n * row]
                        .view(self._stored)
                        .reshape(n, self.n_source),
                    )
                    for start, n, offset in self.runs
                ]
        return self._pieces

    @property
    def array(self):
        """A read-only view of a memory map of the data, mapped on first use; None once
        the file is closed, or when the data is in several runs."""
        pieces = self._mapped()
        return pieces[0][1] if pieces is not None and self.runs is None else None

    def release(self):
        """Drop the map (and its descriptor) until the rows are asked for again."""
        self._map = self._pieces = None

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(first row in the file, block)``: a read-only (rows, n_source) view of
        the map when the file is C-ordered and native-endian, aligned or not (every
        backend reads unaligned rows, as the in-memory API has always handed them any
        user array; ``numpy.savez`` puts a stored member's data at an odd offset, and
        copying it had cost 3x a .npy; bfloat16 comes as its bits, ``BFLOAT16``);
        otherwise (Fortran order, big-endian) a C-ordered native copy in one block-sized
        buffer, reused from block to block (a block is valid until the next is asked
        for; fresh 32 MiB arrays cost their page faults every block, which had made such
        files 3-4x slower than a .npy). Rows per
        block as in :func:`leepfast._driver.block_rows`; a block never spans two runs.
        The file is checked against the identity it had when opened before every block
        (a file that shrank under its map would raise SIGBUS)."""
        self.check_open()
        native = self.dtype if self.dtype.isnative else self.dtype.newbyteorder("=")
        pieces = self._mapped()
        direct = self._stored.isnative and not self.fortran_order
        rows = _driver.block_rows(
            block_size,
            self.n_source,
            self.dtype.itemsize,
            views=direct and large_views,
            logits=logits,
        )
        buffer = None
        if not direct:
            k = min(rows, max(len(array) for _, array in pieces))
            buffer = np.empty((k, self.n_source), native)
        for first, array in pieces:
            for start in range(0, len(array), rows):
                if first or start:
                    self.check_unchanged()
                block = array[start : start + rows]
                if not direct:  # for Fortran order: one contiguous run per column
                    out = buffer[: len(block)]
                    np.copyto(out, block, casting="equiv")
                    block = out
                yield first + start, block
                del block

    def __repr__(self):
        order = ", Fortran order" if self.fortran_order else ""
        return super().__repr__()[:-1] + order + ")"


def map_data(path, dtype, shape, offset, fortran, role="predictions"):
    """A read-only memory map of the data, advised for sequential access (best effort)."""
    try:
        mm = np.memmap(
            path,
            dtype=dtype,
            mode="r",
            offset=offset,
            shape=shape,
            order="F" if fortran else "C",
        )
    except OSError as err:
        if err.errno != errno.ENOMEM:
            raise
        raise map_refused(path, offset, role) from None
    raw = getattr(mm, "_mmap", None)
    advice = getattr(mmap, "MADV_SEQUENTIAL", None)
    if raw is not None and advice is not None and hasattr(raw, "madvise"):
        try:
            raw.madvise(advice)
        except (OSError, ValueError):  # unsupported here: only a hint
            pass
    return mm


def map_refused(path, offset, role):
    """The error for a map the system refused (ENOMEM): the size, and RLIMIT_AS."""
    size = os.stat(path).st_size
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        unlimited = limit == resource.RLIM_INFINITY
    except (ImportError, AttributeError, OSError, ValueError):
        limit, unlimited = None, False
    if limit is None:
        why = "the system refused to map it (out of address space)"
    elif unlimited:
        why = (
            "the system refused to map it, with no address-space limit (RLIMIT_AS "
            "unlimited): check vm.max_map_count and vm.overcommit_memory"
        )
    else:
        why = (
            f"the address space of this process is limited to {limit:,} bytes "
            f"({limit / 2**30:.3g} GiB, RLIMIT_AS; ulimit -v {limit // 1024}), less "
            f"than the map needs with what is already mapped: raise the limit (ulimit "
            f"-v unlimited) or split the dump into shards (mapped one at a time)"
        )
    err = OSError(
        f"{where(role, os.fspath(path))}: cannot memory-map its {size - offset:,} "
        f"bytes of data ({(size - offset) / 2**30:.3g} GiB): {why}"
    )
    err.errno = errno.ENOMEM
    return err
