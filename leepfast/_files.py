"""Prediction dumps and labels on disk, and the out-of-core driver.

Sources
-------
- ``.npy`` (format versions 1.0, 2.0, 3.0): the header is parsed here, never by
  ``np.load``, and nothing in a file is ever unpickled. An object (pickled) ``.npy`` is
  rejected from the text of its header before the header is evaluated; the header must be
  a dict literal of plain constants before ``ast.literal_eval`` sees it; the size the
  header claims is compared with the size of the file before anything is mapped. The data
  is then mapped read-only (``np.memmap`` mode ``"r"``).
- raw binary: rows of ``n_source`` values of ``dtype`` (little-endian unless the dtype
  says ``">"``), the number of rows taken from the file size.
- shards: several files are one dataset, in the order given; a directory stands for its
  files and a glob for the files it matches, sorted by name with numbers read as numbers
  (``part-2`` before ``part-10``; :mod:`leepfast._order`).
- labels: a 1-D integer ``.npy``, or text with one integer per line (ASCII digits, an
  optional ``-``, ASCII whitespace around).
- anything else that a known magic number names (npz, torch.save, pickle, safetensors,
  HDF5, Parquet, Arrow, Zarr, compressed) is refused naming its format
  (:mod:`leepfast._formats`), never read as raw floats.

Fortran-ordered ``.npy`` files are streamed correctly: a block of rows of an (n, Z)
Fortran array is a (Z, rows) slice of the C-ordered (Z, n) array on disk, i.e. one
contiguous run per source column; it is copied into one block-sized C-ordered buffer.
Big-endian files are converted block by block. Both cost one block of extra memory.

The driver
----------
:func:`score_files` runs pass 1 of an :class:`~leepfast.Accumulator` over every block
of every shard, finalizes, then runs pass 2 over the same blocks. Each block is a view of
the memory map (or one block-sized copy), used and dropped, so the extra anonymous memory
is one or two blocks plus the Y x Z state, whatever the size of the files. The maps are
advised ``MADV_SEQUENTIAL`` where the platform has it.
"""

import ast
import errno
import glob
import mmap
import os
import re
import warnings

import numpy as np

from . import _api, _driver, _formats, _order, _state

__all__ = [
    "FileFormatError",
    "Labels",
    "PredictionFile",
    "Predictions",
    "open_labels",
    "open_predictions",
    "score_files",
]


from ._errors import FileFormatError  # noqa: E402 - one class, defined with the others

NPY_MAGIC = b"\x93NUMPY"
#: Longest .npy header accepted (a float array's header is about 128 bytes).
MAX_NPY_HEADER = 1 << 16
#: Longest line accepted in a text label file (an int64 has at most 20 characters).
MAX_LABEL_LINE = 64
#: Bytes of label text parsed at a time.
TEXT_CHUNK = 1 << 20
#: Labels scanned at a time when checking a label file.
LABEL_CHUNK = 1 << 20

_FLOAT_DESCR = re.compile(r"[<>|=]?f[248]\Z")
_INT_DESCR = re.compile(r"[<>|=]?[iu][1248]\Z")
_OBJECT_DESCR = re.compile(r"""['"]descr['"]\s*:\s*['"][<>|=]?O""")


def _where(role, name):
    return f"{role} (file {name})"


def _fail(role, name, message):
    raise FileFormatError(f"{_where(role, name)}: {message}")


def _file_size(path, role):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{role}: no such file or directory: {os.fspath(path)!r}"
        ) from None
    if not os.path.isfile(path):
        raise FileFormatError(f"{role}: expected a regular file, got {os.fspath(path)!r}")
    return st.st_size


def _is_npy(path):
    """True if the name ends in .npy or the file starts with the .npy magic string."""
    if os.fspath(path).lower().endswith(".npy"):
        return True
    with open(path, "rb") as f:
        return f.read(len(NPY_MAGIC)) == NPY_MAGIC


# ---------------------------------------------------------------------------------------
# .npy headers


def _read_npy_header(f, size, role, name):
    """The header text and the offset of the data, from a .npy file open at byte 0."""
    prefix = f.read(10)
    if not prefix.startswith(NPY_MAGIC[: len(prefix)]) or len(prefix) < len(NPY_MAGIC):
        if prefix[:1] == b"\x80":
            hint = " (it looks like a Python pickle, which leepfast never loads)"
        else:
            hint = _formats.container_hint(name, size, role)
        _fail(
            role,
            name,
            f"not a .npy file: it does not start with the .npy magic "
            f"string b'\\x93NUMPY'{hint}",
        )
    if len(prefix) < 10:
        _fail(role, name, f"truncated .npy file: {size} bytes, shorter than its preamble")
    major, minor = prefix[6], prefix[7]
    if major not in (1, 2, 3) or minor != 0:
        _fail(
            role,
            name,
            f"unsupported .npy format version {major}.{minor}; expected 1.0, 2.0 or 3.0",
        )
    if major == 1:
        header_len, start = int.from_bytes(prefix[8:10], "little"), 10
    else:
        more = f.read(2)
        if len(more) < 2:
            _fail(
                role, name, f"truncated .npy file: {size} bytes, shorter than its preamble"
            )
        header_len, start = int.from_bytes(prefix[8:10] + more, "little"), 12
    if header_len > MAX_NPY_HEADER:
        _fail(
            role,
            name,
            f".npy header length is {header_len} bytes; expected at most "
            f"{MAX_NPY_HEADER} (a float array's header is about 128 bytes)",
        )
    if start + header_len > size:
        _fail(
            role,
            name,
            f"truncated .npy file: the header claims {header_len} bytes "
            f"but the file has {size - start} after the preamble",
        )
    raw = f.read(header_len)
    try:
        text = raw.decode("utf8" if major == 3 else "latin1")
    except UnicodeDecodeError as err:
        _fail(
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
        _fail(
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
        _fail(role, name, f".npy header is not a dict of plain constants: {shown!r}")
    header = ast.literal_eval(body)
    if set(header) != {"descr", "fortran_order", "shape"}:
        _fail(
            role,
            name,
            f".npy header keys are {sorted(header)}; expected "
            f"['descr', 'fortran_order', 'shape']",
        )
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        _fail(role, name, f".npy header 'descr' is {descr!r}; expected a dtype string")
    if not isinstance(fortran, bool):
        _fail(
            role,
            name,
            f".npy header 'fortran_order' is {fortran!r}; expected True or False",
        )
    if not isinstance(shape, tuple) or any(d < 0 for d in shape):
        _fail(
            role,
            name,
            f".npy header 'shape' is {shape!r}; expected a tuple of non-negative integers",
        )
    return descr, fortran, shape


def _open_npy(path, role, allowed, kinds, ndim):
    """Check a .npy file; return (dtype, shape, fortran_order, data offset)."""
    name = os.fspath(path)
    size = _file_size(path, role)
    with open(path, "rb") as f:
        text, offset = _read_npy_header(f, size, role, name)
    descr, fortran, shape = _parse_npy_header(text, role, name)
    if not allowed.match(descr):
        _fail(role, name, f"holds dtype {descr!r}; expected {kinds}")
    dtype = np.dtype(descr)
    if len(shape) != ndim:
        expected = "(n_samples, n_source)" if ndim == 2 else "(n_samples,)"
        _fail(role, name, f"holds an array of shape {shape}; expected shape {expected}")
    data = dtype.itemsize
    for d in shape:
        data *= d
    if size - offset != data:
        how = "truncated" if size - offset < data else "longer than its header says"
        _fail(
            role,
            name,
            f"{how}: the header says shape {shape} of {dtype}, "
            f"{data} bytes of data, but the file has {size - offset} bytes after "
            f"its {offset}-byte header",
        )
    if data == 0:
        _fail(
            role,
            name,
            f"holds no data (shape {shape}); expected at least one "
            f"sample" + (" and one source class" if ndim == 2 else ""),
        )
    return dtype, shape, fortran, offset


def _map(path, dtype, shape, offset, fortran, role="predictions"):
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
        raise _map_refused(path, offset, role) from None
    raw = getattr(mm, "_mmap", None)
    advice = getattr(mmap, "MADV_SEQUENTIAL", None)
    if raw is not None and advice is not None and hasattr(raw, "madvise"):
        try:
            raw.madvise(advice)
        except (OSError, ValueError):  # unsupported here: only a hint
            pass
    return mm


def _map_refused(path, offset, role):
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
        f"{_where(role, os.fspath(path))}: cannot memory-map its {size - offset:,} "
        f"bytes of data ({(size - offset) / 2**30:.3g} GiB): {why}"
    )
    err.errno = errno.ENOMEM
    return err


# ---------------------------------------------------------------------------------------
# Predictions


class PredictionFile:
    """One file of prediction rows, memory-mapped read-only.

    Attributes
    ----------
    path : str
    format : {"npy", "raw"}
    dtype : numpy.dtype
        float16, float32 or float64, either byte order.
    n_samples, n_source : int
    fortran_order : bool
    nbytes : int
        Bytes of prediction data (the file without its header).
    array : ndarray of shape (n_samples, n_source)
        A read-only view of the memory map.
    """

    def __init__(self, path, format, dtype, shape, offset, fortran_order=False):
        self.path = os.fspath(path)
        self.format = format
        self.dtype = dtype
        self.n_samples, self.n_source = shape
        self.fortran_order = fortran_order
        self.nbytes = self.n_samples * self.n_source * dtype.itemsize
        self.offset = offset
        st = os.stat(self.path)
        #: (size, mtime_ns, inode) when opened: checked again before each pass reads it
        self.identity = (st.st_size, st.st_mtime_ns, st.st_ino)
        self._map = self._array = None
        self._closed = False

    @property
    def array(self):
        """A read-only view of a memory map of the data, mapped on first use (a map holds
        a descriptor: the driver maps one shard at a time and releases it after its
        blocks). None once the file is closed."""
        if self._array is None and not self._closed:
            shape = (self.n_samples, self.n_source)
            self._map = _map(self.path, self.dtype, shape, self.offset, self.fortran_order)
            self._array = self._map.view(np.ndarray)
        return self._array

    @array.setter
    def array(self, value):
        self._array = value
        if value is None:
            self._map = None
            self._closed = True

    def release(self):
        """Drop the map (and its descriptor) until the rows are asked for again."""
        self._map = self._array = None

    def check_unchanged(self):
        """Refuse a file whose size, modification time or inode differ from those seen
        when it was opened (a re-dumping job replaced or rewrote it)."""
        try:
            st = os.stat(self.path)
            now = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            now = None
        if now != self.identity:
            _fail(
                "predictions",
                self.path,
                "changed since it was opened (size, modification time or inode "
                "differ): was it re-dumped? Score it again from the start",
            )

    def __repr__(self):
        order = ", Fortran order" if self.fortran_order else ""
        return (
            f"PredictionFile({self.path!r}, {self.format}, {self.dtype}, "
            f"shape=({self.n_samples}, {self.n_source}){order})"
        )


def open_npy_predictions(path):
    """A :class:`PredictionFile` from a .npy file of float16/32/64 predictions."""
    dtype, shape, fortran, offset = _open_npy(
        path, "predictions", _FLOAT_DESCR, "float16, float32 or float64 predictions", 2
    )
    return PredictionFile(path, "npy", dtype, shape, offset, fortran)


def _not_npy(path):
    if path is None:
        return ""
    return (
        f"; {os.fspath(path)} is one (its name does not end in .npy and it does not "
        f"start with the .npy magic string)"
    )


def _check_raw_dtype(dtype, path=None):
    if dtype is None:
        raise TypeError(
            "dtype: raw (non-.npy) prediction files need a dtype "
            "(float16, float32 or float64) and n_source" + _not_npy(path)
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


def _check_n_source(n_source, path=None):
    if n_source is None:
        raise TypeError(
            "n_source: raw (non-.npy) prediction files need n_source, the "
            "number of values per row" + _not_npy(path)
        )
    if isinstance(n_source, bool) or not isinstance(n_source, (int, np.integer)):
        raise TypeError(
            f"n_source: expected a positive integer, got {type(n_source).__name__}"
        )
    if n_source < 1:
        raise ValueError(f"n_source: expected a positive integer, got {n_source}")
    return int(n_source)


def open_raw_predictions(path, dtype, n_source):
    """A :class:`PredictionFile` from raw rows of ``n_source`` values of ``dtype``."""
    dtype = _check_raw_dtype(dtype, path)
    n_source = _check_n_source(n_source, path)
    name = os.fspath(path)
    size = _file_size(path, "predictions")
    row = n_source * dtype.itemsize
    if size == 0:
        _fail("predictions", name, "is empty; expected at least one row")
    if size % row:
        _fail(
            "predictions",
            name,
            f"has {size} bytes, not a multiple of the row size "
            f"{row} ({n_source} values of {dtype.name}): {size // row} rows and "
            f"{size % row} bytes left over; check dtype and n_source",
        )
    return PredictionFile(path, "raw", dtype, (size // row, n_source), 0)


def _expand(paths, role, conflicts=None):
    """The files that ``paths`` stands for, in order: a list as given, the files of a
    directory or the matches of a glob sorted with numbers read as numbers
    (:mod:`leepfast._order`). ``conflicts`` gets ``(directory or glob, a, b)`` for each
    one whose names sort differently as strings."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    try:
        paths = list(paths)
    except TypeError:
        raise TypeError(
            f"{role}: expected a path or a list of paths, got {type(paths).__name__}"
        ) from None
    if not paths:
        raise ValueError(f"{role}: expected at least one file, got none")
    files = []
    for p in paths:
        if not isinstance(p, (str, bytes, os.PathLike)):
            raise TypeError(f"{role}: expected paths, got {type(p).__name__}")
        p = os.fsdecode(os.fspath(p))  # a bytes path is a path, as for open()
        if os.path.isdir(p):
            _formats.refuse_zarr_directory(p, role)
            found = _order.natural_sorted(
                os.path.join(p, e)
                for e in os.listdir(p)
                if not e.startswith(".") and os.path.isfile(os.path.join(p, e))
            )
            if not found:
                raise FileNotFoundError(f"{role}: directory {p!r} holds no files")
            _refuse_strays(p, found, role)
            _note_order(conflicts, p, found)
            files += found
        elif os.path.exists(p) or not glob.has_magic(p):
            files.append(p)
        else:
            found = _order.natural_sorted(f for f in glob.glob(p) if os.path.isfile(f))
            if not found:
                raise FileNotFoundError(f"{role}: no file matches {p!r}")
            _note_order(conflicts, p, found)
            files += found
    return files


def _refuse_strays(directory, found, role):
    """Refuse a directory of .npy shards that also holds other files (a README.txt, a
    log): read as raw rows, they would be asked for a dtype, or scored as floats."""
    if not any(f.lower().endswith(".npy") for f in found):
        return  # raw shards, or nothing that says otherwise
    strays = [f for f in found if not _is_npy(f)]
    if strays:
        names = ", ".join(repr(os.path.basename(f)) for f in strays[:3])
        more = f" and {len(strays) - 3} more" if len(strays) > 3 else ""
        raise FileFormatError(
            f"{_where(role, strays[0])}: is not a .npy file, in directory {directory!r} "
            f"of .npy shards, which holds {len(strays)} file(s) that are not .npy "
            f"({names}{more}): move them out of the folder, or pass the shards as a "
            f"glob ({os.path.join(directory, '*.npy')!r}) or a list",
            role,
        )


def _note_order(conflicts, source, found):
    pair = None if conflicts is None else _order.disagreement(found)
    if pair is not None:
        conflicts.append((source, *pair))


class Predictions:
    """Prediction rows in one or more files (shards), read as one dataset in order.

    Made by :func:`open_predictions`. Every header and size has been checked and every
    file mapped read-only; nothing has been read yet.

    Attributes
    ----------
    files : list of PredictionFile
    n_samples : int
        Rows over all shards.
    n_source : int
        Z, the same in every shard.
    nbytes : int
        Bytes of prediction data over all shards.
    order_conflicts : list of (str, str, str)
        For each directory or glob whose files sort differently with numbers read as
        numbers and as strings: (the directory or glob, a, b), a before b read as
        numbers. Scored against labels from one file, such shards are refused
        (:func:`leepfast._order.check_label_order`).
    """

    def __init__(self, files):
        self.files = files
        self.order_conflicts = []
        self.n_source = files[0].n_source
        for f in files[1:]:
            if f.n_source != self.n_source:
                _fail(
                    "predictions",
                    f.path,
                    f"has {f.n_source} source classes "
                    f"(columns); expected {self.n_source}, as in {files[0].path}",
                )
        self.n_samples = sum(f.n_samples for f in files)
        self.nbytes = sum(f.nbytes for f in files)

    def __repr__(self):
        dtypes = sorted({f.dtype.name for f in self.files})
        return (
            f"Predictions({len(self.files)} file(s), n_samples={self.n_samples}, "
            f"n_source={self.n_source}, dtype={'/'.join(dtypes)}, "
            f"nbytes={self.nbytes})"
        )

    def __len__(self):
        return self.n_samples

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(file, first dataset row of the file, first row in the file, block)``.

        ``block`` is a read-only (rows, n_source) view of the map when the file is
        C-ordered, native-endian and aligned; otherwise (Fortran order, big-endian,
        unaligned data) one block-sized C-ordered native copy. Rows per block as in the
        in-memory API: ``block_size`` rows; by default about 32 MiB of input, or about
        1 GiB for views when ``large_views`` (the backend takes any block in place);
        16 times fewer bytes for ``logits``.
        """
        offset = 0
        for f in self.files:
            if f._closed:
                raise ValueError(
                    f"predictions: {f.path} was closed; open the predictions again"
                )
            f.check_unchanged()
            native = f.dtype.newbyteorder("=")
            direct = f.array.flags.aligned and f.dtype.isnative and not f.fortran_order
            rows = _driver.block_rows(
                block_size,
                f.n_source,
                f.dtype.itemsize,
                views=direct and large_views,
                logits=logits,
            )
            for start in range(0, f.n_samples, rows):
                if start:  # a file that shrank under its map would raise SIGBUS
                    f.check_unchanged()
                block = f.array[start : start + rows]
                if not direct:  # for Fortran order: one contiguous run per column
                    block = np.array(block, dtype=native, order="C")
                yield f, offset, start, block
                del block
            if len(self.files) > 1:
                f.release()  # one shard's map (and descriptor) at a time
            offset += f.n_samples

    def close(self):
        """Drop the maps (they are unmapped once no block refers to them)."""
        for f in self.files:
            f.array = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_predictions(paths, *, dtype=None, n_source=None):
    """Open prediction dumps (one file or shards) without reading them.

    Parameters
    ----------
    paths : path, glob or directory, or a list of them
        The shards of one dataset, in order: a list is read as given. A directory
        stands for its (non-hidden) files and a glob for its matches, each sorted by
        name with numbers read as numbers (``part-2`` before ``part-10``); names whose
        numeric and string orders disagree are listed in ``order_conflicts``, and
        refused against labels from one file (:func:`leepfast._order.check_label_order`,
        which ``leepfast score`` applies). Files whose name ends in ``.npy``, or that
        start with the .npy magic string, are read as ``.npy`` (format 1.0 to 3.0, any
        byte order, C or Fortran order, never unpickled); a known container (npz,
        torch.save, pickle, safetensors, HDF5, Parquet, Arrow, Zarr) is refused; any
        other file is read as raw rows of ``n_source`` values of ``dtype``.
    dtype : {"float16", "float32", "float64"} or numpy.dtype, optional
        Raw files: the value type, little-endian unless it says ``">"``. For ``.npy``
        files it must agree with the header if given.
    n_source : int, optional
        Raw files: values per row (Z); the number of rows is the file size divided by
        the row size. For ``.npy`` files it must agree with the header if given.

    Returns
    -------
    Predictions
        With ``files``, ``n_samples``, ``n_source`` and ``nbytes``.

    Raises
    ------
    FileNotFoundError
        A path that does not exist, an empty directory, a glob without matches.
    FileFormatError (a ValueError)
        A file that is not what it claims: bad or pickled .npy header, a size that
        disagrees with the header, a raw size that is not a multiple of the row size,
        shards with different numbers of columns. The message names the file.
    """
    files, conflicts = [], []
    for path in _expand(paths, "predictions", conflicts):
        size = _file_size(path, "predictions")
        npy = _is_npy(path)
        if not npy:  # before dtype and n_source are asked for, or used
            _formats.refuse_container(path, size, "predictions")
        if npy:
            f = open_npy_predictions(path)
            given = None if dtype is None else _check_raw_dtype(dtype)
            if given is not None and given.name != f.dtype.name:
                _fail(
                    "predictions",
                    f.path,
                    f"holds {f.dtype.name}, but dtype={given.name} was given",
                )
            if n_source is not None and _check_n_source(n_source) != f.n_source:
                _fail(
                    "predictions",
                    f.path,
                    f"has {f.n_source} source classes, but n_source={n_source} was given",
                )
        else:
            f = open_raw_predictions(path, dtype, n_source)
        files.append(f)
    preds = Predictions(files)
    preds.order_conflicts = conflicts
    return preds


# ---------------------------------------------------------------------------------------
# Labels


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
        _fail(
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
    _fail("labels", name, f"line {number} is {shown!r}; {_LABEL_SYNTAX}{why}")


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
    _fail(
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
                _fail(
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
                _fail(
                    "labels",
                    name,
                    f"line {line} has more than {MAX_LABEL_LINE} "
                    f"characters; expected one integer per line",
                )
    if tail:
        yield _parse_label_lines([tail], line, name)


class Labels:
    """Target labels from a file (or an array), read in chunks, never loaded whole.

    Made by :func:`open_labels`, which scans the file once to check every line and
    find the number of labels and their range.

    Attributes
    ----------
    path : str or None
        None for labels given as an array.
    format : {"npy", "text", "array"}
    n_samples : int
    low, high : int
        The smallest and the largest label.
    """

    def __init__(self, format, path=None, array=None):
        self.format = format
        self.path = None if path is None else os.fspath(path)
        self.where = "labels" if path is None else _where("labels", self.path)
        self._array = array
        n, low, high = 0, None, None
        for chunk in self.chunks():
            n += len(chunk)
            lo, hi = int(chunk.min()), int(chunk.max())
            low = lo if low is None else min(low, lo)
            high = hi if high is None else max(high, hi)
        if n == 0:
            raise FileFormatError(
                f"{self.where}: no labels; expected one per row of predictions"
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

    def chunks(self):
        """Yield the labels in order as 1-D integer arrays of at most about 1M labels."""
        if self.format == "text":
            yield from _text_label_chunks(self.path, self.path)
            return
        for start in range(0, len(self._array), LABEL_CHUNK):
            yield self._array[start : start + LABEL_CHUNK]

    def reader(self):
        """A function ``take(k)`` that returns the next k labels (a new pass each call)."""
        chunks = self.chunks()
        pending, have = [], 0

        def take(k):
            nonlocal have
            while have < k:
                chunk = next(chunks, None)
                if chunk is None:
                    raise FileFormatError(
                        f"{self.where}: ended before the last row of "
                        f"predictions (did the file change?)"
                    )
                pending.append(chunk)
                have += len(chunk)
            out = pending[0] if len(pending) == 1 else np.concatenate(pending)
            pending[:] = [out[k:]] if len(out) > k else []
            have = len(out) - k
            return out[:k]

        return take

    def _raise_row(self, bad, expected):
        """Raise for the first label where ``bad(chunk)`` is True."""
        row = 0
        for chunk in self.chunks():
            hits = np.flatnonzero(bad(chunk))
            if len(hits):
                r = row + int(hits[0])
                line = f" (line {r + 1})" if self.format == "text" else ""
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


def open_labels(labels):
    """Target labels from a file or an array, checked but not loaded.

    Parameters
    ----------
    labels : path, or array of shape (n_samples,) of any integer dtype
        A 1-D integer ``.npy`` file (any byte order; never unpickled), a text file with
        one integer per line (a name not ending in ``.npy``, not starting with the .npy
        magic string), or an in-memory array.

    Returns
    -------
    Labels
        With ``n_samples``, ``low`` and ``high``; ``chunks()`` streams them.
    """
    if isinstance(labels, Labels):
        return labels
    if not isinstance(labels, (str, bytes, os.PathLike)):
        arr = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
        arr = _api.check_labels(arr, arr.shape[0] if arr.ndim else -1)
        return Labels("array", array=arr)
    labels = os.fsdecode(os.fspath(labels))  # a bytes path is a path, as for open()
    size = _file_size(labels, "labels")
    npy = _is_npy(labels)
    if not npy:
        _formats.refuse_container(labels, size, "labels")
    if npy:
        dtype, shape, _, offset = _open_npy(
            labels, "labels", _INT_DESCR, "integer labels", 1
        )
        return Labels("npy", labels, _map(labels, dtype, shape, offset, False, "labels"))
    return Labels("text", labels)


# ---------------------------------------------------------------------------------------
# The row source of the driver


class FileRows:
    """The row source (see :mod:`leepfast._driver`) of opened predictions and labels:
    blocks of the maps, with the rows counted in their file in messages."""

    stable = False  # each pass re-reads the files: pass 2 counts its classes

    def __init__(self, preds, labels, block_size=None, large_views=False, logits=False):
        if labels.n_samples != preds.n_samples:
            files = len(preds.files)
            raise ValueError(
                f"{labels.where}: expected {preds.n_samples} labels (one per row of "
                f"the {files} prediction file{'s' if files > 1 else ''}), got "
                f"{labels.n_samples}"
            )
        self.preds, self.labels = preds, labels
        self.block_size, self.large_views = block_size, large_views
        self.logits = logits
        self.n_samples, self.n_source = preds.n_samples, preds.n_source
        self.nbytes = preds.nbytes

    def blocks(self):
        take = self.labels.reader()
        blocks = self.preds.blocks(self.block_size, self.large_views, self.logits)
        for f, _, start, rows in blocks:
            yield _driver.Block(rows, take(len(rows)), start, f" (file {f.path})")
            del rows


def score_files(
    predictions,
    labels,
    *,
    n_target=None,
    logits=False,
    dtype=None,
    n_source=None,
    backend="auto",
    n_threads=None,
    block_size=None,
    progress=None,
):
    """LEEP, NCE and the joint of prediction dumps on disk, never loading one whole.

    Runs pass 1 over every block of every file, finalizes, then pass 2 over the same
    blocks; the same :class:`~leepfast.Result` as :func:`leepfast.score` on the
    concatenated arrays (to 1e-12 relative).

    Parameters
    ----------
    predictions : path, glob, directory, list of them, or Predictions
        The shards of one dataset in order (see :func:`open_predictions`): rows of
        float16, float32 or float64 probabilities, or logits with ``logits=True``.
    labels : path or array of shape (n_samples,), any integer dtype
        A 1-D integer ``.npy``, a text file with one integer per line, or an array
        (see :func:`open_labels`); one label in [0, n_target) per row.
    n_target : int, optional
        Y; default largest label + 1.
    logits : bool, default False
    dtype, n_source : optional
        For raw (non-.npy) files; see :func:`open_predictions`.
    backend : {"auto", "cython", "numba", "numpy"}, default "auto"
    n_threads : int, optional
        None or -1: all cores.
    block_size : int, optional
        Rows per block. Default: about 32 MiB of input per block, or about 1 GiB
        (at most 2^20 rows) for C-ordered native-endian files with a compiled backend
        (``cython``, ``numba``), whose blocks are views of the map. The extra
        anonymous memory is one or two copied blocks (Fortran order, byte-swapped)
        plus the O(n_threads * Y * Z) state, whatever the file size.
    progress : bool, optional
        Show a progress bar on stderr (rows, GB/s) once a run lasts a second; default:
        only when stderr is a terminal.

    Returns
    -------
    Result

    Raises
    ------
    FileNotFoundError, FileFormatError
        As :func:`open_predictions` and :func:`open_labels`.
    ValueError
        Label count different from the row count, labels out of range, NaN, negative or
        unnormalised rows: the message names the file and the row (counted from 0 in
        that file).
    KeyboardInterrupt
        Ctrl-C stops the run within one block.
    """
    own = not isinstance(predictions, Predictions)
    preds = (
        open_predictions(predictions, dtype=dtype, n_source=n_source)
        if own
        else predictions
    )
    try:
        return _drive(
            preds,
            open_labels(labels),
            n_target,
            logits,
            backend,
            n_threads,
            block_size,
            progress,
        )
    finally:
        if own:
            preds.close()


def _drive(preds, labels, n_target, logits, backend, n_threads, block_size, progress):
    _driver.block_rows(block_size, 1, 1)  # check block_size before any work
    source = FileRows(preds, labels, block_size, logits=logits)
    _order.check_label_order(preds, labels)
    inferred = n_target is None
    n_target = labels.check_range(n_target)
    acc = _api.Accumulator(n_target, logits=logits, backend=backend, n_threads=n_threads)
    where = "" if labels.path is None else f" in {labels.path}"
    _state.check_state_fits(acc.n_slots, n_target, preds.n_source, where, inferred)
    acc.n_target_inferred = False  # checked and announced here, naming the label file
    source.large_views = acc.takes_large_views
    return _driver.two_passes(acc, source, "result", progress)
