"""The Parquet reader (needs ``pyarrow``: ``pip install "leepfast[formats]"``): rows
from one list column, or one float column per class, read one row group at a time.

- a ``FixedSizeList`` (or list) column of float16/32/64, every row of the same length:
  the column ``key`` names (the only list column when ``key`` is None);
- or, with no list column and ``key`` None, every column, each a float column of one
  type: column j is class j.

Each pass opens the file and reads one row group at a time (memory: one row group), so
a file larger than RAM streams. The values of a list column without
nulls are taken as they are (a (rows, n_source) view of pyarrow's buffer, no copy); one
column per class is gathered into a (rows, n_source) array. Nulls are refused naming the
row.

pyarrow's decoding of a row group is the cost, not leepfast's (the README has the
figures): Parquet stores a list column as values with repetition and definition levels,
which pyarrow decodes into new buffers for every row group, compressed or not.
"""

import os

import numpy as np

from .. import _driver
from . import containers
from ._common import choose, fail, file_size, words
from .mapped import RowFile

NAME = "parquet"


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "reading Parquet files needs pyarrow: pip install pyarrow (or the "
            "leepfast[formats] extra)"
        ) from None
    return pa, pq


def claims(path):
    """A file that opens and ends with Parquet's magic ``PAR1``."""
    return containers.is_parquet(path)


def _float(pa, t):
    """The numpy dtype of a float16/32/64 arrow type, or None."""
    for check, dtype in ((pa.types.is_float16, "f2"), (pa.types.is_float32, "f4")):
        if check(t):
            return np.dtype(dtype)
    return np.dtype("f8") if pa.types.is_float64(t) else None


def _is_list(pa, t):
    return (
        pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)
    )


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """The rows of a Parquet file: the list column ``key``, or one column per class."""
    pa, pq = _pyarrow()
    name = os.fspath(path)
    file_size(path, role)
    try:
        pf = pq.ParquetFile(name)
    except (OSError, pa.ArrowException) as err:
        fail(role, name, f"cannot be opened as Parquet ({err})")
    schema = pf.schema_arrow
    lists = [f.name for f in schema if _is_list(pa, f.type)]
    if key is not None or lists:
        column = choose(lists if key is None else schema.names, key, role, name, "columns")
        t = schema.field(column).type
        values = _float(pa, t.value_type) if _is_list(pa, t) else None
        if values is None:
            fail(
                role,
                f"{name}[{column}]",
                f"column has type {t}; expected a list of float16, float32 or float64 "
                f"{role} (one list per row)",
            )
        columns, listed = [column], True
        width = t.list_size if pa.types.is_fixed_size_list(t) else None
    else:
        kinds = {str(f.type) for f in schema}
        values = _float(pa, schema.field(0).type) if len(kinds) == 1 else None
        if values is None:
            shown = ", ".join(f"{f.name}: {f.type}" for f in list(schema)[:6])
            fail(
                role,
                name,
                f"holds columns ({shown}); expected one list column of float rows, "
                f"or one float column per class, all of one type",
            )
        columns, width, listed = list(schema.names), len(schema.names), False
    n = pf.metadata.num_rows
    if width is None:  # a variable-size list: the length of its first row
        try:
            first = pf.read_row_group(0, columns=columns).column(0) if n else None
        except (OSError, pa.ArrowException) as err:
            fail(role, name, f"row group 0 cannot be read ({err})")
        width = len(first[0]) if n and first[0].is_valid else 0
    if n == 0 or width == 0:
        fail(
            role,
            name,
            f"holds no data ({n} rows of {width} values); expected at least one sample "
            f"and one {words(role)['column']}",
        )
    rows = Table(path, columns, listed, values, (n, width), role)
    return rows.given(dtype, n_source, columns[0] if rows.listed else None)


class Table(RowFile):
    """Rows of a Parquet file, read one row group at a time."""

    def __init__(self, path, columns, listed, dtype, shape, role):
        super().__init__(path, NAME, dtype, shape, role)
        self.columns, self.listed = columns, listed

    def _group(self, pa, table, first):
        """A row group as an (rows, Z) array, nulls and ragged rows refused."""
        if self.listed:
            column = table.column(0)
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            if column.null_count:
                bad = first + int(np.flatnonzero(~np.asarray(column.is_valid()))[0])
                fail(self.role, self.path, f"row {bad} is null; expected a row of values")
            if not pa.types.is_fixed_size_list(column.type):
                lengths = np.diff(np.asarray(column.offsets))
                if (lengths != self.n_source).any():
                    bad = int(np.flatnonzero(lengths != self.n_source)[0])
                    fail(
                        self.role,
                        self.path,
                        f"row {first + bad} has {lengths[bad]} values; expected "
                        f"{self.n_source}, as in row 0",
                    )
            flat = column.flatten()
            if flat.null_count:
                bad = int(np.flatnonzero(~np.asarray(flat.is_valid()))[0])
                row = first + bad // self.n_source
                fail(self.role, self.path, f"row {row} holds a null value")
            # no nulls: the values are pyarrow's buffer, viewed (read-only), not copied
            return flat.to_numpy(zero_copy_only=False).reshape(-1, self.n_source)
        out = np.empty((table.num_rows, self.n_source), self.dtype)
        for j, column in enumerate(table.columns):
            column = column.combine_chunks()
            if column.null_count:
                bad = first + int(np.flatnonzero(~np.asarray(column.is_valid()))[0])
                fail(self.role, self.path, f"row {bad} holds a null value")
            out[:, j] = column.to_numpy(zero_copy_only=False)
        return out

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(first row, block)``: row groups, cut to the driver's block rows (a
        row group is in memory already: its blocks are views of it, as large as the
        backend takes views)."""
        self.check_open()
        pa, pq = _pyarrow()
        rows = _driver.block_rows(
            block_size,
            self.n_source,
            self.dtype.itemsize,
            views=large_views,
            logits=logits,
        )
        # read, not mapped: a map gained nothing measurable, and a file cut short while
        # mapped would end the process (SIGBUS) instead of raising
        pf = pq.ParquetFile(self.path)
        first = 0
        for g in range(pf.metadata.num_row_groups):
            if first:
                self.check_unchanged()
            try:
                table = pf.read_row_group(g, columns=self.columns)
            except (OSError, pa.ArrowException) as err:  # a damaged page
                fail(
                    self.role,
                    self.path,
                    f"row group {g} (rows from {first}) cannot be read ({err})",
                )
            group = self._group(pa, table, first)
            del table
            for start in range(0, len(group), rows):
                yield first + start, np.ascontiguousarray(group[start : start + rows])
            first += len(group)
            del group
        if first != self.n_samples:
            fail(self.role, self.path, f"has {first} rows, not {self.n_samples}")
