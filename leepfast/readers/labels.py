"""Target labels from a file or an array, checked once, then streamed in chunks.

- a 1-D integer ``.npy`` (any byte order; never unpickled), mapped read-only;
- text with one integer per line (ASCII digits, an optional ``-``, ASCII whitespace
  around), parsed about 1 MiB at a time;
- an in-memory array.
"""

import copy
import os
import re

import numpy as np
from numpy.typing import ArrayLike

from .. import _api
from .._errors import FileFormatError
from . import containers, npy
from ._common import fail, file_size, where
from .mapped import map_data

#: Longest line accepted in a text label file (an int64 has at most 20 characters).
MAX_LABEL_LINE = 64
#: Bytes of label text parsed at a time.
TEXT_CHUNK = 1 << 20
#: Labels scanned at a time when checking a label file.
LABEL_CHUNK = 1 << 20


#: What a label line may hold: ASCII whitespace, an optional '-' (a negative label is
#: refused later with its row), ASCII digits. Python's int() takes more ('1_0', '+3',
#: '٣', full-width digits): every other byte is refused before int() sees the line.
_LABEL_BYTES = b"0123456789- \t\r\x0b\x0c"
_LABEL_LINE = re.compile(rb"[ \t\r\x0b\x0c]*-?[0-9]+[ \t\r\x0b\x0c]*\Z")
_LABEL_SYNTAX = (
    "expected one integer per line (ASCII digits 0-9, an optional leading '-', "
    "ASCII spaces or tabs around them)"
)


def _bad_label_line(line, number, name):
    """Raise for a label line that breaks the syntax (or overflows int64), else return."""
    if len(line) > MAX_LABEL_LINE:
        fail(
            "labels",
            name,
            f"line {number} has {len(line)} characters; expected one integer per line",
        )
    ok = _LABEL_LINE.match(line) is not None
    if ok and -(2**63) <= int(line) < 2**63:
        return
    # shown as it is (repr: invisible characters escaped), bytes that are not UTF-8 as bytes
    why = "; the value is outside the int64 range" if ok else ""
    try:
        shown = line.decode("utf-8")
    except UnicodeDecodeError:
        shown, why = line, "; the line is not UTF-8 text"
    else:
        bad = next((c for c in shown if c.encode() not in _LABEL_BYTES), None)
        if bad is not None and not bad.isascii():
            import unicodedata

            what = unicodedata.name(bad, "") or "not an ASCII character"
            why = f"; {bad!r} is U+{ord(bad):04X} {what}".rstrip()
    fail("labels", name, f"line {number} is {shown!r}; {_LABEL_SYNTAX}{why}")


def _parse_label_lines(lines, first_line, name):
    """int64 labels from a list of byte lines; ``first_line`` is the 1-based number."""
    longest = max(map(len, lines))
    if longest <= MAX_LABEL_LINE and not b"".join(lines).translate(None, _LABEL_BYTES):
        try:  # only the bytes of the syntax are left: int()'s extras cannot get through
            return np.array(lines, dtype=f"S{max(longest, 1)}").astype(np.int64)
        except (ValueError, OverflowError):
            pass
    for i, line in enumerate(lines):  # in order: the first bad line is the one reported
        _bad_label_line(line, first_line + i, name)
    fail(
        "labels",
        name,
        f"lines {first_line} to {first_line + len(lines) - 1} could "
        f"not be read as integers",
    )


def _text_label_chunks(path, name):
    """Yield int64 arrays of the labels of a text file, about 1 MiB of text at a time."""
    line = 1  # number of the first line not parsed yet
    tail = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(TEXT_CHUNK)
            if not data:
                break
            data = tail + data
            nul = data.find(b"\x00")
            if nul >= 0:
                start = data.rfind(b"\n", 0, nul) + 1
                if start:  # the lines before the NUL's line come first
                    yield _parse_label_lines(data[: start - 1].split(b"\n"), line, name)
                at = line + data.count(b"\n", 0, nul)
                fail(
                    "labels",
                    name,
                    f"contains NUL bytes (the first on line {at}): binary data, not "
                    f"one integer per line (a .npy file without its header?)",
                )
            cut = data.rfind(b"\n")
            tail = data[cut + 1 :]
            if cut >= 0:
                lines = data[:cut].split(b"\n")
                yield _parse_label_lines(lines, line, name)
                line += len(lines)
            if len(tail) > MAX_LABEL_LINE:
                fail(
                    "labels",
                    name,
                    f"line {line} has more than {MAX_LABEL_LINE} "
                    f"characters; expected one integer per line",
                )
    if tail:
        yield _parse_label_lines([tail], line, name)


#: Tables whose column ``path:column`` names the labels.
TABLES = (".csv", ".tsv", ".parquet")


def table_column(labels):
    """(path, column) for ``"y.csv:label"`` naming a column of a CSV/TSV/Parquet file
    (a path that exists as given is a path, colon or not), else None."""
    if ":" not in labels or os.path.exists(labels):
        return None
    path, column = labels.rsplit(":", 1)
    if not path.lower().endswith(TABLES) or not column:
        return None
    return path, column


def _csv_field_chunks(path, column, name):
    """Yield (line number of the first, list of the UTF-8 bytes of its fields) for one
    column of a CSV (TSV: tab-separated) file, about 1M fields at a time; its first line
    names the columns."""
    import csv

    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = csv.reader(f, delimiter=delimiter)
        header = next(rows, None)
        if header is None or column not in header:
            shown = ", ".join(repr(c) for c in (header or [])[:8])
            fail("labels", name, f"has no column {column!r}; its columns are {shown}")
        j = header.index(column)
        line, fields = 2, []
        for row in rows:
            if j >= len(row):
                fail("labels", name, f"line {line + len(fields)} has no {column!r} field")
            fields.append(row[j].encode("utf-8", "surrogateescape"))
            if len(fields) == LABEL_CHUNK:
                yield line, fields
                line, fields = line + len(fields), []
        if fields:
            yield line, fields


def _csv_label_chunks(path, column, name):
    """Yield int64 arrays of one integer column of a CSV (TSV) file, about 1M labels at
    a time."""
    for line, fields in _csv_field_chunks(path, column, name):
        yield _parse_label_lines(fields, line, name)


def _csv_holds_names(path, column, name):
    """Whether a column holds class names (no field an integer) rather than integer
    labels (every field one); a column of both kinds, or with an empty field, is
    refused naming the first field that breaks it: a typo in a column of integers must
    not renumber its classes."""
    first = None  # (line, field) of the first field
    for line, fields in _csv_field_chunks(path, column, name):
        for i, field in enumerate(fields):
            if not field.strip():
                fail(
                    "labels",
                    name,
                    f"line {line + i} has an empty {column!r} field; expected a label",
                )
            is_int = _LABEL_LINE.match(field) is not None
            if first is None:
                first = (line + i, field, is_int)
            elif is_int != first[2]:
                kind = "an integer label" if first[2] else "a class name"
                shown = field.decode("utf-8", "surrogateescape")
                said = first[1].decode("utf-8", "surrogateescape")
                fail(
                    "labels",
                    name,
                    f"line {line + i} is {shown!r}; expected {kind} as on line "
                    f"{first[0]} ({said!r}): a column holds integer labels or class "
                    f"names, not both",
                )
    return first is not None and not first[2]


def _csv_class_names(path, column, name):
    """Every field of a column of class names, as str."""
    names = []
    for _, fields in _csv_field_chunks(path, column, name):
        names.extend(f.decode("utf-8", "surrogateescape") for f in fields)
    return np.array(names, dtype=str)


def _parquet_label_chunks(path, column, name):
    """Yield int64 arrays of one integer (or integer-valued float) column of a Parquet
    file, one row group at a time."""
    from .parquet import _pyarrow

    pa, pq = _pyarrow()
    pf = pq.ParquetFile(path)
    if column not in pf.schema_arrow.names:
        shown = ", ".join(repr(c) for c in pf.schema_arrow.names[:8])
        fail("labels", name, f"has no column {column!r}; its columns are {shown}")
    first = 0
    for g in range(pf.metadata.num_row_groups):
        values = pf.read_row_group(g, columns=[column]).column(0).combine_chunks()
        if values.null_count:
            bad = first + int(np.flatnonzero(~np.asarray(values.is_valid()))[0])
            fail("labels", name, f"row {bad} is null; expected an integer label")
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            yield np.array(values.to_pylist(), dtype=str)
            first += len(values)
            continue
        arr = values.to_numpy(zero_copy_only=False)
        if arr.dtype.kind == "f":
            whole = np.isfinite(arr) & (arr == np.round(arr))
            if not whole.all():
                bad = int(np.argmin(whole))
                fail(
                    "labels",
                    name,
                    f"row {first + bad} is {float(arr[bad])!r}; expected integer labels "
                    f"(column {column!r} holds {values.type})",
                )
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in "iu":
            fail(
                "labels",
                name,
                f"column {column!r} holds {values.type}; expected integer labels or "
                f"class names (strings)",
            )
        yield arr
        first += len(arr)


def chunk_reader(chunks, where, rows):
    """A function ``take(k)`` that returns the next k rows of the arrays ``chunks``
    yields, in order (``where`` and ``rows`` name them and what they pair with in the
    error when they end early). A chunk must stay valid after the next is drawn."""
    pending, have = [], 0

    def take(k):
        nonlocal have
        while have < k:
            chunk = next(chunks, None)
            if chunk is None:
                raise FileFormatError(
                    f"{where}: ended before the last row of {rows} (did the file change?)"
                )
            pending.append(chunk)
            have += len(chunk)
        out = pending[0] if len(pending) == 1 else np.concatenate(pending)
        pending[:] = [out[k:]] if len(out) > k else []
        have = len(out) - k
        return out[:k]

    return take


class Labels:
    """Target labels from a file (or an array), read in chunks, never loaded whole.

    Made by :func:`open_labels`, which scans the file once to check every line and
    find the number of labels and their range.

    Attributes
    ----------
    path : str or None
        None for labels given as an array.
    format : {"npy", "text", "csv", "parquet", "array"}
    column : str or None
        The column of a CSV/TSV/Parquet file.
    n_samples : int
    low, high : int
        The smallest and the largest label.
    classes : tuple of str or None
        Labels given as strings: the class of each index (sorted); None otherwise.
    """

    classes = None

    def __init__(self, format, path=None, array=None, rows="predictions", column=None):
        self.format, self.column = format, column
        self.rows = rows  # what the labels pair with, as messages name it
        self.path = None if path is None else os.fspath(path)
        self.where = "labels" if path is None else where("labels", self.path)
        self._array = array
        n, low, high = 0, None, None
        for chunk in self.chunks():
            n += len(chunk)
            lo, hi = int(chunk.min()), int(chunk.max())
            low = lo if low is None else min(low, lo)
            high = hi if high is None else max(high, hi)
        if n == 0:
            raise FileFormatError(
                f"{self.where}: no labels; expected one per row of {self.rows}"
            )
        if high >= 2**63:
            self._raise_row(lambda c: c >= 2**63, "expected labels below 2**63")
        self.n_samples, self.low, self.high = n, low, high

    def __repr__(self):
        return (
            f"Labels({self.path or 'array'!r}, {self.format}, n_samples="
            f"{self.n_samples}, range [{self.low}, {self.high}])"
        )

    def __len__(self):
        return self.n_samples

    def array(self):
        """Every label as one array (labels are small: at most 8 bytes a row), for the
        callers that need them whole next to in-memory rows."""
        return np.concatenate(list(self.chunks()))

    def chunks(self):
        """Yield the labels in order as 1-D integer arrays of at most about 1M labels."""
        if self._array is not None:  # an array, a .npy map, class names read whole
            for start in range(0, len(self._array), LABEL_CHUNK):
                yield self._array[start : start + LABEL_CHUNK]
            return
        if self.format == "text":
            yield from _text_label_chunks(self.path, self.path)
            return
        if self.format == "csv":
            yield from _csv_label_chunks(self.path, self.column, self.path)
            return
        if self.format == "parquet":
            yield from _parquet_label_chunks(self.path, self.column, self.path)

    def reader(self):
        """A function ``take(k)`` that returns the next k labels (a new pass each call)."""
        return chunk_reader(self.chunks(), self.where, self.rows)

    def _raise_row(self, bad, expected):
        """Raise for the first label where ``bad(chunk)`` is True."""
        row = 0
        for chunk in self.chunks():
            hits = np.flatnonzero(bad(chunk))
            if len(hits):
                r = row + int(hits[0])
                line = {"text": f" (line {r + 1})", "csv": f" (line {r + 2})"}.get(
                    self.format, ""
                )
                raise ValueError(
                    f"{self.where}: row {r}{line} is {chunk[hits[0]]}; {expected}"
                )
            row += len(chunk)

    def check_range(self, n_target=None):
        """The number of target classes: ``n_target`` after checking every label is in
        [0, n_target), or high + 1 by default."""
        n_target = _api.check_n_target(n_target)
        if self.low < 0:
            self._raise_row(lambda c: c < 0, "expected labels >= 0")
        if n_target is None:
            return self.high + 1
        if self.high >= n_target:
            self._raise_row(
                lambda c: c >= n_target,
                f"expected an integer in [0, {n_target}) (n_target={n_target})",
            )
        return n_target


def open_labels(
    labels: "ArrayLike | str | os.PathLike[str] | Labels", rows: str = "predictions"
) -> "Labels":
    """Target labels from a file or an array, checked but not loaded.

    Parameters
    ----------
    labels : path, or array of shape (n_samples,) of any integer dtype
        A 1-D integer ``.npy`` file (any byte order; never unpickled), a text file with
        one integer per line (a name not ending in ``.npy``, not starting with the .npy
        magic string), a column of a CSV, TSV or Parquet file as ``"path:column"``
        (``"y.csv:label"``; its first line names the columns), or an in-memory array.
        A table column of class names (a CSV column where no field is an integer, a
        Parquet string or dictionary column) is numbered in sorted order over the
        whole column, as strings in memory are (``Labels.classes`` names them); a CSV
        column with fields of both kinds is refused, naming the first odd one.
    rows : str, default "predictions"
        What the labels pair with, as messages name it ("features" for the feature
        scores).

    Returns
    -------
    Labels
        With ``n_samples``, ``low`` and ``high``; ``chunks()`` streams them.
    """
    if isinstance(labels, Labels):
        if labels.rows == rows:
            return labels
        said = copy.copy(labels)  # the caller's object keeps its words
        said.rows = rows
        return said
    if not isinstance(labels, (str, bytes, os.PathLike)):
        arr = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
        arr, names = _api.check_labels(
            arr, arr.shape[0] if arr.ndim else -1, rows=rows, whole=True, classes=True
        )
        opened = Labels("array", array=arr, rows=rows)
        if names is not None:
            opened.classes = tuple(names.tolist())
        return opened
    labels = os.fsdecode(os.fspath(labels))  # a bytes path is a path, as for open()
    table = table_column(labels)
    if table is not None:
        path, column = table
        file_size(path, "labels")
        if path.lower().endswith(".parquet"):
            chunks = list(_parquet_label_chunks(path, column, path))
            if not any(c.dtype.kind == "U" for c in chunks):
                return Labels("parquet", path, rows=rows, column=column)
            names = np.concatenate([c.astype(str) for c in chunks])
            kind = "parquet"
        elif _csv_holds_names(path, column, path):
            names, kind = _csv_class_names(path, column, path), "csv"
        else:
            return Labels("csv", path, rows=rows, column=column)
        # a column of class names: numbered in sorted order over the whole column, as
        # string labels in memory are (read whole: labels are small)
        codes, classes = _api.encode_labels(names, "labels")
        opened = Labels(kind, path, array=codes, rows=rows, column=column)
        opened.classes = tuple(classes.tolist())
        return opened
    size = file_size(labels, "labels")
    if not npy.claims(labels):
        containers.refuse_container(labels, size, "labels")
        return Labels("text", labels, rows=rows)
    dtype, shape, _, offset = npy.open_header(
        labels, "labels", npy.INT_DESCR, "integer labels", 1
    )
    mapped = map_data(labels, dtype, shape, offset, False, "labels")
    return Labels("npy", labels, mapped, rows=rows)
