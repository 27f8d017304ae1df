"""LEEP and NCE on dask arrays: predictions spread over many machines, scored in place.

The two passes are two stages of one task graph::

    chunk_0 ... chunk_k         row chunks of predictions (never moved), labels aligned
       |           |
    accumulate  accumulate      pass 1 per chunk, the chosen backend's kernels
        \\        /              (an Accumulator per chunk, collapsed to one Y x Z slot)
       tree of merges           only (Y, Z) float64 + int64 states travel
            |
        finalize                C and NCE: one node, fetched once by each worker
       /         \\
    score  ...  score           pass 2 per chunk, next to its data
        \\        /
       tree of sums             scalars and (Y,) counts
            |
          Result

Importing ``leepfast`` never imports dask; this module needs ``dask[array]`` (and
``distributed`` to run on a cluster): ``pip install 'leepfast[dask]'``.

The chunks of an array made by :func:`from_npy_shards` (and passed on unchanged) are
not task results: each per-chunk task maps its rows of the shard itself, uses them and
unmaps them, so no chunk is ever held between the passes, counted as worker memory,
spilled, or sent to another worker.
"""

import math
import os
import weakref
from dataclasses import dataclass

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "leepfast.dask needs dask[array] (and distributed for a cluster): "
        "pip install 'leepfast[dask]'"
    ) from exc

from . import _api, _driver
from . import backends as _backends
from ._api import Accumulator, check_labels, check_n_target, check_predictions
from ._checks import check_flag, positive_int
from ._config import resolve_threads
from ._errors import FileFormatError
from ._options import takes_arguments_of
from .readers import mapped, npy

__all__ = ["from_npy_shards", "leep", "nce", "score"]

#: Default fan-in of the tree reductions.
SPLIT_EVERY = 8


# ---------------------------------------------------------------------------------------
# Checks on the client (kinds and shapes only; values are checked in the tasks)


def _stand_in(arr, name):
    """A zero-byte ndarray with the dask array's dtype and shape, for the shape checks
    of the in-memory API (so the messages are the same)."""
    if any(isinstance(s, float) and math.isnan(s) for s in arr.shape):
        raise ValueError(
            f"{name}: expected a dask array with known chunk sizes, got shape "
            f"{arr.shape}; call .compute_chunk_sizes() on it first"
        )
    base = np.zeros(1, dtype=arr.dtype)
    return np.lib.stride_tricks.as_strided(base, shape=arr.shape, strides=(0,) * arr.ndim)


def _check_split_every(split_every):
    return positive_int(split_every, "split_every", allow_none=False, minimum=2)


def _prepare(predictions, labels):
    """Row-chunked predictions (whole rows per chunk) and labels chunked the same way."""
    if isinstance(predictions, da.Array):
        check_predictions(_stand_in(predictions, "predictions"))
    else:
        predictions = check_predictions(predictions)
        predictions = da.from_array(predictions, chunks=(_default_rows(predictions), -1))
    if len(predictions.chunks[1]) > 1:  # columns split across chunks: whole rows
        predictions = predictions.rechunk({1: -1})
    n = predictions.shape[0]
    rows = predictions.chunks[0]
    if isinstance(labels, da.Array):
        check_labels(_stand_in(labels, "labels"), n)
        if labels.chunks[0] != rows:
            labels = labels.rechunk((rows,))
    else:  # the whole label set: strings are numbered here (sorted), as score does
        labels = check_labels(labels, n, whole=True)
        labels = da.from_array(labels, chunks=(rows,))
    return predictions, labels


def _default_rows(predictions):
    return _driver.block_rows(None, predictions.shape[1], predictions.itemsize)


def _infer_n_target(labels):
    """max(label) + 1 computed with dask (one pass over the labels only); a label the
    in-memory API rejects raises its error, for the same global row."""
    low, high = dask.compute(labels.min(), labels.max())
    if low < 0 or high >= np.iinfo(np.int64).max:
        # the row the in-memory check names: the first negative label, else the first
        # occurrence of the largest one; the check itself runs on that one label
        row = int(da.argmax(labels < 0 if low < 0 else labels == high).compute())
        _api.infer_n_target(labels[row : row + 1].compute(), first_row=row)
    return int(high) + 1


# ---------------------------------------------------------------------------------------
# The tasks (run on the workers; each gets one chunk or a few small states)


@dataclass(frozen=True)
class _Params:
    """What every task needs: the checked options (backend and threads unresolved:
    each worker resolves its own) and the rows per kernel call."""

    n_target: int
    logits: bool
    backend: str
    n_threads: int | None
    block_rows: int

    def accumulator(self, n_threads=None):
        return Accumulator(
            self.n_target,
            logits=self.logits,
            backend=self.backend,
            n_threads=self.n_threads if n_threads is None else n_threads,
        )

    def source(self, chunk, labels, offset):
        """The chunk's rows as a row source (global row numbers in messages)."""
        rows = chunk.load() if isinstance(chunk, _NpyChunk) else chunk
        rows = check_predictions(rows)
        labels = check_labels(labels, rows.shape[0], first_row=offset)
        return _driver.ArraySource(rows, labels, self.block_rows, first_row=offset)


def _accumulate_chunk(chunk, labels, offset, params):
    """Pass 1 over one chunk; the state comes back as one (Y, Z) slot."""
    acc = params.accumulator()
    _driver.run_pass(lambda b: acc.step(1, b), params.source(chunk, labels, offset))
    if acc.n_threads == 1 or acc.n_samples == 0:
        return acc
    return params.accumulator(1).merge(acc)  # thread-local slots summed: one travels


def _merge_states(params, *states):
    out = params.accumulator(1)
    for state in states:
        out.merge(state)
    return out


def _finalize(params, state):
    return params.accumulator(1).merge(state).finalize()


def _score_chunk(final, chunk, labels, offset, params):
    """Pass 2 over one chunk: (sum of log terms, class counts seen, rows seen)."""
    # A pass-2 state of our own over the shared read-only conditional; ``final`` is a
    # task result that other tasks read, so it is never modified.
    acc = final.spawn(params.n_threads)
    _driver.run_pass(lambda b: acc.step(2, b), params.source(chunk, labels, offset), 2)
    return acc.pass2.total, acc.pass2.counts, acc.pass2.n_scored


def _add_parts(*parts):
    return (
        math.fsum(p[0] for p in parts),
        np.sum([p[1] for p in parts], axis=0),
        sum(p[2] for p in parts),
    )


def _result(final, part):
    acc = final.spawn()
    acc.pass2.add(*part)
    return acc.result()  # checks that both passes saw the same rows


def _nce(final):
    return final.nce


def _leep(result):
    return result.leep


def _pinned(chunk, task, *args):
    """``task(*args)``, restricted to the workers that hold the chunk's file, if any."""
    workers = chunk.workers if isinstance(chunk, _NpyChunk) else None
    if workers is None:
        return task(*args)
    with dask.annotate(workers=list(workers), allow_other_workers=False):
        return task(*args)


def _tree(func, items, split_every, *lead):
    """Reduce delayed ``items`` with ``func(*lead, *group)`` in a tree of fan-in
    ``split_every``."""
    task = dask.delayed(func, pure=True)
    while len(items) > 1:
        items = [
            task(*lead, *items[i : i + split_every])
            for i in range(0, len(items), split_every)
        ]
    return items[0]


# ---------------------------------------------------------------------------------------
# The graph and the public functions


def _graph(what, predictions, labels, *, split_every, block_size, **options):
    predictions, labels = _prepare(predictions, labels)
    n_target = check_n_target(options["n_target"])
    if n_target is None:
        n_target = _infer_n_target(labels)
    logits = check_flag(options["logits"], "logits")
    _backends.resolve(options["backend"])  # the in-memory errors for a bad backend or
    resolve_threads(options["n_threads"])  # n_threads, raised here; workers resolve theirs
    split_every = _check_split_every(split_every)
    rows = _driver.block_rows(
        block_size, predictions.shape[1], predictions.itemsize, logits=logits
    )
    params = _Params(n_target, logits, options["backend"], options["n_threads"], rows)

    theta_chunks = _npy_chunks(predictions)
    if theta_chunks is None:  # any other dask array: its chunks are task results
        theta_chunks = predictions.to_delayed().ravel().tolist()
    label_chunks = labels.to_delayed().ravel().tolist()
    offsets = np.concatenate(([0], np.cumsum(predictions.chunks[0])[:-1])).tolist()
    chunks = list(zip(theta_chunks, label_chunks, offsets, strict=True))

    accumulate = dask.delayed(_accumulate_chunk, pure=True)
    states = [_pinned(t, accumulate, t, y, int(off), params) for t, y, off in chunks]
    state = _tree(_merge_states, states, split_every, params)
    final = dask.delayed(_finalize, pure=True)(params, state)
    if what == "nce":
        return dask.delayed(_nce, pure=True)(final)

    score_chunk = dask.delayed(_score_chunk, pure=True)
    parts = [_pinned(t, score_chunk, final, t, y, int(off), params) for t, y, off in chunks]
    result = dask.delayed(_result, pure=True)(final, _tree(_add_parts, parts, split_every))
    if what == "leep":
        return dask.delayed(_leep, pure=True)(result)
    return result


def _run(what, predictions, labels, *, compute, **options):
    graph = _graph(what, predictions, labels, **options)
    return graph.compute() if compute else graph


_PARAMETERS = """
    Parameters
    ----------
    predictions : dask array of shape (n_samples, n_source), float16, float32 or float64
        Row i is the source model's softmax over its n_source classes for target sample
        i (rows sum to 1 within ``leepfast.ROW_SUM_TOLERANCE``), or its logits with
        ``logits=True``. Chunked by rows; chunks that split the columns are rechunked to
        whole rows. Chunk sizes must be known. A NumPy array is wrapped in one.
    labels : dask or NumPy array of shape (n_samples,), any integer dtype
        Target labels in [0, n_target); rechunked to the row chunks of predictions.
    n_target : int, optional
        Number of target classes Y; default max(labels) + 1, computed with dask first
        (a cheap pass over the labels only).
    logits : bool, default False
        Take a max-subtracted softmax of each row (in float64) first.
    backend : {"auto", "cython", "numba", "numpy"}, default "auto"
        The kernels each task uses; "auto" is resolved on each worker.
    n_threads : int, default 1
        Kernel threads per task (None or -1: all the worker's cores). The default is 1
        because dask already runs one task per worker thread.
    block_size : int, optional
        Rows per kernel call inside a chunk (default: about 32 MiB of input).
    split_every : int, default 8
        Fan-in of the tree reductions of the per-chunk states.
    compute : bool, default True
        False: return the ``dask.delayed`` object instead of its value (the labels are
        still read once now if ``n_target`` is None), e.g. for ``client.compute``.

    Raises
    ------
    TypeError, ValueError
        The in-memory API's exceptions and messages, whichever worker finds the bad
        input; row numbers are global.
"""


def _arguments(
    predictions,
    labels,
    *,
    n_target=None,
    logits=False,
    backend="auto",
    n_threads=1,
    block_size=None,
    split_every=SPLIT_EVERY,
    compute=True,
):
    """The arguments of :func:`leep`, :func:`nce` and :func:`score`, written once."""


@takes_arguments_of(_arguments)
def leep(**arguments):
    """Exact LEEP of dask-array predictions, computed where the chunks are.
    {params}
    Returns
    -------
    float
        Equal to ``leepfast.leep`` on the same rows (to rounding of the float64 sums).
    """
    return _run("leep", **arguments)


@takes_arguments_of(_arguments)
def nce(**arguments):
    """Negative Conditional Entropy of dask-array predictions (pass 1 only).
    {params}
    Returns
    -------
    float
        Equal to ``leepfast.nce`` on the same rows.
    """
    return _run("nce", **arguments)


@takes_arguments_of(_arguments)
def score(**arguments):
    """LEEP, NCE, the joint and the conditional of dask-array predictions.
    {params}
    Returns
    -------
    leepfast.Result
        As ``leepfast.score`` returns on the same rows; ``backend`` names the backend of
        the task that finalized pass 1.
    """
    return _run("score", **arguments)


for _f in (leep, nce, score):
    _f.__doc__ = _f.__doc__.replace("{params}", _PARAMETERS)
del _f


# ---------------------------------------------------------------------------------------
# .npy shards on the workers' disks


_ROLE = "predictions"


def _npy_header(path):
    """(dtype, shape, fortran_order, data offset) of a 2-D float .npy shard, from its
    header only (:mod:`leepfast.readers.npy`: never unpickling; size checked against
    the header)."""
    return npy.open_header(
        path, _ROLE, npy.FLOAT_DESCR, "float16, float32 or float64 predictions", 2
    )


#: dask array name -> its _NpyChunk's, for the arrays from_npy_shards made (the name is a
#: token of the paths, headers and chunks, so an equal array finds the same entry); an
#: entry lives as long as one of the arrays made for it (_remember, _forget)
_NPY_ARRAYS = {}
_NPY_USERS = {}  # dask array name -> how many arrays made for it are alive

#: Seconds the client waits for the headers read on the workers named by ``workers=``.
HEADER_TIMEOUT = 60.0


def _remember(array, chunks):
    """Record ``array``'s chunks until the last array made with its name is collected."""
    name = array.name
    _NPY_ARRAYS[name] = chunks
    _NPY_USERS[name] = _NPY_USERS.get(name, 0) + 1
    weakref.finalize(array, _forget, name)


def _forget(name):
    left = _NPY_USERS.get(name, 0) - 1
    if left > 0:
        _NPY_USERS[name] = left
    else:
        _NPY_USERS.pop(name, None)
        _NPY_ARRAYS.pop(name, None)


class _NpyChunk:
    """Rows [start, stop) of one .npy shard: all a task needs to map them itself."""

    __slots__ = ("path", "dtype", "shape", "fortran", "start", "stop", "workers")

    def __init__(self, path, dtype, shape, fortran, start, stop, workers=None):
        self.path, self.dtype, self.shape = path, dtype, shape
        self.fortran, self.start, self.stop = fortran, start, stop
        self.workers = workers  # None, or the workers/hosts that may open the file

    def __getstate__(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state):
        for k, v in zip(self.__slots__, state, strict=True):
            setattr(self, k, v)

    def __dask_tokenize__(self):
        return ("leepfast.dask._NpyChunk", *self.__getstate__())

    def __repr__(self):
        return f"_NpyChunk({self.path!r}, rows {self.start}:{self.stop})"

    def load(self):
        return _load_rows(
            self.path, self.dtype, self.shape, self.fortran, self.start, self.stop
        )


def _npy_chunks(predictions):
    """The _NpyChunk's of an array from from_npy_shards (unchanged since), else None."""
    chunks = _NPY_ARRAYS.get(predictions.name)
    if chunks is None or predictions.chunks != (
        tuple(c.stop - c.start for c in chunks),
        (chunks[0].shape[1],),
    ):
        return None
    return list(chunks)


def _load_rows(path, dtype, shape, fortran, start, stop):
    """Rows [start, stop) of a .npy shard, memory-mapped read-only on this machine."""
    # the header is read again here: the worker sees the file the client described
    found = _npy_header(path)
    if found[:3] != (dtype, shape, fortran):
        raise FileFormatError(
            f"{_ROLE} (file {path}): changed since the dask array was built: its header "
            f"now says dtype {found[0]}, shape {found[1]}, fortran_order {found[2]}; "
            f"the array was built for {dtype}, {shape}, {fortran}"
        )
    return mapped.map_data(path, dtype, shape, found[3], fortran)[start:stop]


def _places(workers, paths):
    """(per-path worker restrictions, per-path headers), the headers read on the
    workers that hold the files when ``workers`` is given."""
    if workers is None:
        return [None] * len(paths), [_npy_header(path) for path in paths]
    if isinstance(workers, (str, bytes)) or not hasattr(workers, "__len__"):
        raise TypeError(
            f"workers: expected None or a sequence with one entry per path, "
            f"got {type(workers).__name__}"
        )
    if len(workers) != len(paths):
        raise ValueError(
            f"workers: expected one entry per path ({len(paths)}), got {len(workers)}"
        )
    places = []
    for entry in workers:
        entry = [entry] if isinstance(entry, (str, int)) else list(entry)
        if not entry or not all(isinstance(w, (str, int)) for w in entry):
            raise TypeError(
                f"workers: expected a worker address, name or host (or a non-empty list "
                f"of them) per path, got {entry!r}"
            )
        places.append(tuple(entry))
    try:
        from distributed import get_client
    except ImportError as exc:  # pragma: no cover - the extra installs it
        raise ImportError(
            "workers: needs distributed: pip install 'leepfast[dask]'"
        ) from exc
    try:
        client = get_client()
    except ValueError:
        raise ValueError(
            "workers: reading the headers where the shards are needs a "
            "distributed.Client (none is running)"
        ) from None
    known = client.scheduler_info().get("workers", {})
    for path, place in zip(paths, places, strict=True):
        for entry in place:  # distributed waits forever for (or fails on) a stray one
            if not any(_names_worker(entry, a, info) for a, info in known.items()):
                raise ValueError(
                    f"workers: {entry!r} (for {path}) matches no worker of the cluster "
                    f"by address, name or host; expected one of {_known(known)}"
                )
    futures = [
        client.submit(
            _npy_header, path, workers=list(place), allow_other_workers=False, pure=False
        )
        for path, place in zip(paths, places, strict=True)
    ]
    import asyncio

    from distributed import wait

    try:  # the workers may have left since: bounded, never a hang
        wait(futures, timeout=HEADER_TIMEOUT)
    except (TimeoutError, asyncio.TimeoutError):
        late = [p for p, f in zip(paths, futures, strict=True) if not f.done()]
        for f in futures:
            f.cancel()
        known = client.scheduler_info().get("workers", {})
        raise ValueError(
            f"workers: the header of {late[0]} was not read within {HEADER_TIMEOUT:g} s "
            f"on {list(places[paths.index(late[0])])}; the cluster has {_known(known)}"
        ) from None
    return places, client.gather(futures)


def _names_worker(entry, address, info):
    """Whether a ``workers`` entry names this worker as the scheduler matches it: its
    address (with or without the protocol), its name, or its host."""
    if isinstance(entry, str) and (
        entry == address
        or address.split("://", 1)[-1] == entry
        or entry == info.get("host")
    ):
        return True
    return entry == info.get("name")


def _known(known):
    if not known:
        return "no workers (none has connected)"
    return ", ".join(
        f"{address} (name {info.get('name')!r}, host {info.get('host')!r})"
        for address, info in sorted(known.items())
    )


def from_npy_shards(paths, *, chunk_rows=None, workers=None):
    """One dask array over many 2-D ``.npy`` shards, each chunk memory-mapped where the
    task that reads it runs.

    Only the headers are read here, by the parser of ``leepfast``'s file API (never
    unpickling anything, file sizes checked against the headers); each chunk is a
    read-only ``numpy.memmap`` opened inside its task, so the data is never loaded on
    the client and each row is read from disk by the worker that scores it.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        The shards, in row order; each a 2-D float16/32/64 array with the same number
        of columns and the same dtype (any byte order, C or Fortran order). The paths
        must name the same files on the client (headers) and on the workers (data):
        a shared file system, or the same paths on every machine; or see ``workers``.
    chunk_rows : int, optional
        Split each shard into chunks of at most this many rows (default: one chunk per
        shard).
    workers : sequence, optional
        For shards on the workers' local disks: one entry per path, the worker (address
        or name) or host (name or IP) holding that file, or a list of them. Its header
        is then read there (through the default ``distributed.Client``), and every task
        that reads the shard is restricted to those workers (``allow_other_workers=
        False``): a worker restarted on the same host, or with the same name, takes
        them over. Without a client (threaded scheduler) the restrictions are ignored.
        An entry that names no connected worker (addresses, names and hosts are
        compared as the scheduler compares them: a host name does not match workers
        registered by IP) is a ValueError naming the known workers; headers not read
        within ``HEADER_TIMEOUT`` seconds are one too.

    Returns
    -------
    dask.array.Array of shape (sum of shard rows, n_source)
        Chunked by rows: one or more chunks per shard, whole rows per chunk.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(
            f"paths: expected a sequence of .npy paths, got one {type(paths).__name__}"
        )
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("paths: expected at least one .npy shard, got none")
    if chunk_rows is not None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)):
            raise TypeError(
                f"chunk_rows: expected None or a positive integer, "
                f"got {type(chunk_rows).__name__}"
            )
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows: expected a positive integer, got {chunk_rows}")
        chunk_rows = int(chunk_rows)
    places, headers = _places(workers, paths)
    pieces, first = [], None
    load = dask.delayed(_NpyChunk.load, pure=True)
    chunks = []
    for path, place, header in zip(paths, places, headers, strict=True):
        dtype, shape, fortran, _ = header
        if first is None:
            first = (shape[1], dtype)
        elif (shape[1], dtype) != first:
            raise FileFormatError(
                f"{_ROLE} (file {path}): holds shape {shape} of {dtype}; expected "
                f"{first[0]} columns of {first[1]}, as in {paths[0]}"
            )
        step = chunk_rows or shape[0]
        for start in range(0, shape[0], step):
            stop = min(start + step, shape[0])
            chunks.append(_NpyChunk(path, dtype, shape, fortran, start, stop, place))
            pieces.append(
                da.from_delayed(
                    _pinned(chunks[-1], load, chunks[-1]),
                    shape=(stop - start, shape[1]),
                    dtype=dtype,
                )
            )
    array = da.concatenate(pieces, axis=0)
    _remember(array, tuple(chunks))
    return array
