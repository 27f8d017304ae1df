"""Benchmarks as ratios measured in one run: the report behind ``leepfast bench``.

Baselines, measured side by side on the same array:

- the read floor: a plain parallel vectorised sum over the same array with the same
  threads (``leepfast._kernels.read_floor``), the cost of reading the data once. An exact
  LEEP reads the data twice, so 2.0 "reads" is the floor for any exact algorithm.
- the common NumPy implementation found in public code (:func:`naive_leep`): per-class
  masked sums for the joint, then ``predictions @ conditional.T`` and a gather.
"""

import contextlib
import os
import time
from functools import partial

import numpy as np

from . import _api
from . import backends as _backends
from ._config import resolve_threads


def make_predictions(n, n_source, n_target, dtype="float32", seed=0):
    """Fixed-seed softmax rows (n, Z) of the given dtype and labels (n,) in [0, Y).

    Rows are normalised in float64 and then cast, so they pass the dtype's tolerance.
    """
    rng = np.random.default_rng(seed)
    theta = np.empty((n, n_source), dtype=dtype)
    step = max(1, (16 << 20) // (8 * n_source))
    for start in range(0, n, step):  # bounded temporaries for large n
        block = rng.random((min(step, n - start), n_source)) ** 4
        theta[start : start + step] = block / block.sum(axis=1, keepdims=True)
    labels = rng.integers(0, n_target, size=n)
    return theta, labels


def naive_leep(predictions, labels):
    """The common NumPy implementation (a baseline, not for use).

    Per-class masked sums for the joint, then the (n, Y) matrix predictions @ C.T and a
    gather. Note what it gets wrong: NaN when a source class has no mass.
    """
    n = len(labels)
    n_target = labels.max() + 1
    joint = np.zeros((n_target, predictions.shape[1]))
    for y in range(n_target):
        joint[y] = predictions[labels == y].sum(axis=0)
    joint /= n
    conditional = joint / joint.sum(axis=0, keepdims=True)
    expected = predictions @ conditional.T
    return float(np.mean(np.log(expected[np.arange(n), labels])))


def read_floor(predictions, n_threads):
    """One parallel read of the array (a plain sum), the bandwidth floor.

    Without the compiled extension (``--backends numba`` on a build without Cython),
    a NumPy sum of the same bytes stands in (one thread: a higher floor, so the reads
    it reports are an underestimate; :func:`format_table` says so).
    """
    try:
        from . import _kernels
        from .backends.cython import _bits  # float16 as the bit patterns the C side reads
    except ImportError:
        a = np.ascontiguousarray(predictions)
        return (
            float(a.view(np.uint16).sum(dtype=np.uint64))
            if a.dtype == np.float16
            else float(a.sum(dtype=np.float64))
        )
    return _kernels.read_floor(_bits(np.ascontiguousarray(predictions)), n_threads)


@contextlib.contextmanager
def simd_cap(level):
    """LEEPFAST_SIMD set to ``level`` (None: left as it is) inside the block."""
    if level is None:
        yield
        return
    old = os.environ.get("LEEPFAST_SIMD")
    os.environ["LEEPFAST_SIMD"] = level
    try:
        yield
    finally:
        if old is None:
            del os.environ["LEEPFAST_SIMD"]
        else:
            os.environ["LEEPFAST_SIMD"] = old


def cpu_levels():
    """Every SIMD level the compiled backend runs on this CPU, best first ([] without
    it): a capped AVX-512 CPU runs the AVX2 rows, it is not an AVX2 CPU."""
    try:
        from . import _kernels
    except ImportError:
        return []
    return list(reversed(_kernels.LEVELS[: _kernels.simd_level() + 1]))


def median_times(fns, rounds, clock=time.perf_counter):
    """Median seconds of each function of the dict ``fns``, timed round-robin: every
    function once, then again, ``rounds`` times, so that a slow spell of a shared
    machine falls on all of them alike and their ratios hold. ``clock``: wall time by
    default (``time.process_time`` for the CPU time of this process)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: float(np.median(seen)) for name, seen in times.items()}


def run(
    n=100_000,
    n_source=1000,
    n_target=100,
    dtypes=("float32", "float64", "float16"),
    backends=None,
    n_threads=None,
    repeat=7,
    naive=True,
    naive_repeat=2,
    levels=None,
):
    """Measure every backend and dtype against the baselines; returns a list of rows.

    Per dtype, each compiled backend is timed round-robin with the read floor
    (``repeat`` rounds; its reads are against that floor, the "read floor" row shows the
    first); then the naive baseline ``naive_repeat`` times and the NumPy reference
    once (the naive one is timed before the reference, whose large temporaries slowed
    it; its BLAS threads, spinning after it returns, can then only slow the reference).
    Each row is a dict with ``backend``, ``dtype``, ``seconds`` (median), ``gb_per_s``
    (input bytes / time), ``reads`` (time / read floor) and ``speedup`` (naive time /
    time, None when the naive baseline was not run). ``levels`` (e.g. ``cpu_levels()``):
    the compiled backend is timed once per SIMD level, capped through LEEPFAST_SIMD, as
    rows named ``cython[<level>]``.
    """
    n_threads = resolve_threads(n_threads)
    base = list(backends or _backends.available_backends())
    rows = []
    for dtype in dtypes:
        backends = list(base)
        fast = [b for b in backends if b != "numpy"]
        theta, labels = make_predictions(n, n_source, n_target, dtype)
        calls = {
            b: partial(
                _api.leep, theta, labels, n_target=n_target, backend=b, n_threads=n_threads
            )
            for b in backends
        }
        if levels and "cython" in calls:
            compiled = calls.pop("cython")

            def capped(level, fn=compiled):
                with simd_cap(level):
                    return fn()

            for level in levels:
                calls[f"cython[{level}]"] = partial(capped, level)
            backends = [b for b in backends if b != "cython"] + [
                f"cython[{level}]" for level in levels
            ]
            fast = [b for b in backends if b != "numpy"]
        # each backend round-robin with its own read floor: one backend's threads,
        # still spinning after its call, would slow the next backend's call
        floor_fn = partial(read_floor, theta, n_threads)
        floors, seconds = {}, {}
        for b in fast:
            calls[b]()  # warm up (numba compiles on first use)
            m = median_times({"floor": floor_fn, b: calls[b]}, repeat)
            floors[b], seconds[b] = m["floor"], m[b]
        floor = (
            floors[fast[0]] if fast else median_times({"floor": floor_fn}, repeat)["floor"]
        )
        # the naive baseline before the NumPy reference: after the reference's large
        # temporaries it ran 1.6x slower (1040 vs 600-650 ms here), which would have
        # flattered every speedup
        naive_s = (
            median_times({"naive": partial(naive_leep, theta, labels)}, naive_repeat)[
                "naive"
            ]
            if naive
            else None
        )
        if "numpy" in calls:
            seconds["numpy"] = median_times({"numpy": calls["numpy"]}, 1)["numpy"]
            floors["numpy"] = floor

        row = partial(_row, dtype=dtype, nbytes=theta.nbytes, naive_s=naive_s)
        rows.append(row("read floor", floor, floor))
        if naive:
            rows.append(row("naive numpy", naive_s, floor))
        rows.extend(row(b, seconds[b], floors[b]) for b in backends)
        del theta, labels, calls
    return rows


def _row(backend, seconds, floor, *, dtype, nbytes, naive_s):
    """One row of :func:`run`: ``seconds`` for ``nbytes`` of ``dtype`` input against the
    read floor of the same backend and the naive baseline (None: not measured)."""
    return dict(
        backend=backend,
        dtype=dtype,
        seconds=seconds,
        gb_per_s=nbytes / seconds / 1e9,
        reads=seconds / floor,
        speedup=naive_s / seconds if naive_s is not None else None,
    )


def format_table(rows, n, n_source, n_target, n_threads):
    """The rows of :func:`run` as a Markdown table."""
    try:
        from . import _kernels
        from ._config import SIMD_LEVELS
        from ._config import simd_cap as cap

        simd = (
            f", {SIMD_LEVELS[_kernels.simd_effective(cap())]} kernels "
            f"(best on this CPU: {_kernels.simd()})"
        )
    except ImportError:  # no compiled backend
        simd = ", read floor: a one-thread NumPy sum (no compiled extension)"
    head = (
        f"LEEP, n={n}, Z={n_source}, Y={n_target}, {n_threads} threads{simd}; "
        "reads = time / one parallel read of the same array (exact floor: 2.0); "
        "speedup = naive NumPy time / time\n\n"
    )
    lines = [
        "| backend | dtype | ms | GB/s | reads | speedup vs naive |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        speed = "" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        lines.append(
            f"| {r['backend']} | {r['dtype']} | {1e3 * r['seconds']:.1f} | "
            f"{r['gb_per_s']:.2f} | {r['reads']:.2f} | {speed} |"
        )
    return head + "\n".join(lines)
