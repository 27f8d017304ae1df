"""Benchmarks as ratios measured in one run: the report behind ``leepfast bench``.

Baselines, measured side by side on the same array:

- the read floor: a plain parallel vectorised sum over the same array with the same
  threads (``leepfast._kernels.read_floor``), the cost of reading the data once. An exact
  LEEP reads the data twice, so 2.0 "reads" is the floor for any exact algorithm.
- the common NumPy implementation found in public code (:func:`naive_leep`): per-class
  masked sums for the joint, then ``predictions @ conditional.T`` and a gather. A
  reference line only: DESIGN.md section 5 sets no goal against it.

The goals of DESIGN.md section 5 that this report and ``benchmarks/contract.py`` both
check are in :data:`GOALS`, in one place.
"""

import contextlib
import os
import time
from functools import partial

import numpy as np

from . import _api
from . import backends as _backends
from ._config import resolve_threads
from ._tensors import BFLOAT16, as_floats, bfloat16_of

#: The targets of DESIGN.md section 5 (a ratio is "at most" unless it says "at least").
GOALS = {
    "reads": 2.2,  # LEEP on in-memory float32/float64 probabilities, in reads
    "reads_small_head": 3.0,  # the same for Z <= 100 (DESIGN: Z=10 and Z=100)
    "float16": 0.6,  # float16 time / float32 time
    "logits_reads": 4.0,  # logits (float16/32/64), in reads
    "logits_rtol": 1e-13,  # logits against the float64 reference, relative
    "fixed_us": 50.0,  # fixed cost per call, microseconds
    "numba": 1.3,  # numba time / compiled time, every input kind
    "tllib": 15.0,  # at least: tllib's LEEP time / leepfast time
    "torch": 10.0,  # at least: the obvious PyTorch CPU code's time / leepfast time
    "features": 1.5,  # feature score time / one float64 F.T @ F
    "public_logme": 5.0,  # at least: public LogME time / leepfast.logme time
}


def reads_goal(n_source):
    """The reads goal of LEEP on probabilities with ``n_source`` classes (the small-head
    line, Z=10 and Z=100, allows 3 reads; the n sweep holds Z=100 to 2.2)."""
    return GOALS["reads_small_head"] if n_source <= 100 else GOALS["reads"]


def make_predictions(n, n_source, n_target, dtype="float32", seed=0):
    """Fixed-seed softmax rows (n, Z) of the given dtype and labels (n,) in [0, Y).

    Rows are normalised in float64 and then cast, so they pass the dtype's tolerance
    ("bfloat16": rounded to the nearest, held as :data:`~leepfast._tensors.BFLOAT16`).
    """
    rng = np.random.default_rng(seed)
    bf16 = dtype == "bfloat16"
    theta = np.empty((n, n_source), dtype=BFLOAT16 if bf16 else dtype)
    step = max(1, (16 << 20) // (8 * n_source))
    for start in range(0, n, step):  # bounded temporaries for large n
        block = rng.random((min(step, n - start), n_source)) ** 4
        block /= block.sum(axis=1, keepdims=True)
        theta[start : start + step] = bfloat16_of(block) if bf16 else block
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
    from ._openmp import kernels_or_none

    _kernels = kernels_or_none()
    if _kernels is None:
        a = np.ascontiguousarray(predictions)
        return (
            float(a.view(np.uint16).sum(dtype=np.uint64))
            if a.dtype.itemsize == 2  # float16, bfloat16: the bits
            else float(a.sum(dtype=np.float64))
        )
    from .backends.cython import _bits  # 16-bit floats as the bits the C side reads

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
    from ._openmp import kernels_or_none

    _kernels = kernels_or_none()
    if _kernels is None:
        return []
    return list(reversed(_kernels.LEVELS[: _kernels.simd_level() + 1]))


def median_times(fns, rounds, clock=time.perf_counter, per_call=False):
    """Median seconds of each function of the dict ``fns``, timed round-robin: every
    function once, then again, ``rounds`` times, so that a slow spell of a shared
    machine falls on all of them alike and their ratios hold. ``clock``: wall time by
    default (``time.process_time`` for the CPU time of this process). ``per_call``: each
    function returns how many calls it made in a row (e.g. as many as fit in some
    time), and each of its times is divided by that count before the median."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = clock()
            count = fn()
            took = clock() - start
            times[name].append(took / count if per_call else took)
    return {name: float(np.median(seen)) for name, seen in times.items()}


def current_level():
    """The SIMD level the compiled backend runs at now (the LEEPFAST_SIMD cap
    respected), or None without the compiled extension."""
    from ._config import SIMD_LEVELS
    from ._config import simd_cap as cap
    from ._openmp import kernels_or_none

    _kernels = kernels_or_none()
    if _kernels is None:
        return None
    return SIMD_LEVELS[_kernels.simd_effective(cap())]


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
    Each row is a dict with ``backend``, ``level`` (the SIMD level of a compiled-backend
    row, else None), ``dtype``, ``seconds`` (median), ``gb_per_s`` (input bytes / time),
    ``reads`` (time / read floor) and ``speedup`` (naive time / time, None when the
    naive baseline was not run). ``levels`` (e.g. ``cpu_levels()``): the compiled
    backend is timed once per SIMD level, capped through LEEPFAST_SIMD; by default at
    the level in use. :func:`judge` adds the goals.
    """
    n_threads = resolve_threads(n_threads)
    base = list(backends or _backends.available_backends())
    if "cython" in base and not levels:
        levels = [current_level()]
    rows = []
    for dtype in dtypes:
        theta, labels = make_predictions(n, n_source, n_target, dtype)
        calls = {}
        for b in base:
            call = partial(
                _api.leep, theta, labels, n_target=n_target, backend=b, n_threads=n_threads
            )
            if b != "cython":
                calls[b, None] = call
                continue

            def capped(level, fn=call):
                with simd_cap(level):
                    return fn()

            for level in levels:
                calls[b, level] = partial(capped, level)
        fast = [key for key in calls if key[0] != "numpy"]
        # each backend round-robin with its own read floor: one backend's threads,
        # still spinning after its call, would slow the next backend's call
        floor_fn = partial(read_floor, theta, n_threads)
        floors, seconds = {}, {}
        for key in fast:
            calls[key]()  # warm up (numba compiles on first use)
            m = median_times({"floor": floor_fn, "call": calls[key]}, repeat)
            floors[key], seconds[key] = m["floor"], m["call"]
        floor = (
            floors[fast[0]] if fast else median_times({"floor": floor_fn}, repeat)["floor"]
        )
        # the naive baseline before the NumPy reference: after the reference's large
        # temporaries it ran 1.6x slower (1040 vs 600-650 ms here), which would have
        # flattered every speedup
        naive_s = (
            median_times(
                {"naive": partial(naive_leep, as_floats(theta), labels)}, naive_repeat
            )["naive"]
            if naive
            else None
        )
        if ("numpy", None) in calls:
            key = ("numpy", None)
            seconds[key] = median_times({"numpy": calls[key]}, 1)["numpy"]
            floors[key] = floor

        row = partial(_row, dtype=dtype, nbytes=theta.nbytes, naive_s=naive_s)
        rows.append(row("read floor", None, floor, floor))
        if naive:
            rows.append(row("naive numpy", None, naive_s, floor))
        rows.extend(
            row(b, level, seconds[b, level], floors[b, level]) for b, level in calls
        )
        del theta, labels, calls
    return rows


def _row(backend, level, seconds, floor, *, dtype, nbytes, naive_s):
    """One row of :func:`run`: ``seconds`` for ``nbytes`` of ``dtype`` input against the
    read floor of the same backend and the naive baseline (None: not measured)."""
    return dict(
        backend=backend,
        level=level,
        dtype=dtype,
        seconds=seconds,
        gb_per_s=nbytes / seconds / 1e9,
        reads=seconds / floor,
        speedup=naive_s / seconds if naive_s is not None else None,
    )


def judge(rows, n_source):
    """The DESIGN.md section 5 goals that apply to the rows of :func:`run`, as ``goal``
    (text, "" for none) and ``holds`` (text: "yes", "no", with the ratio where it is not
    in another column; "" for none) added to each row.

    Compiled backend: reads <= 2.2 in float32 and float64 (3 when Z <= 100), float16
    (and bfloat16, held to the same goal: also 2 bytes a value) time <= 0.6x the
    float32 time at the same level. Numba: <= 1.3x the compiled
    backend (the best level measured) on the same dtype, compared in reads (each against
    the floor timed in its own rounds: the two are timed in separate rounds). The read
    floor, the naive NumPy code (a reference line) and the NumPy backend (the oracle)
    have no goal.
    """
    from ._config import SIMD_LEVELS

    compiled = {(r["dtype"], r["level"]): r for r in rows if r["backend"] == "cython"}
    best = {}  # per dtype, the compiled row of the highest level measured
    for (dtype, level), r in compiled.items():
        if dtype not in best or SIMD_LEVELS.index(level) > SIMD_LEVELS.index(
            best[dtype]["level"]
        ):
            best[dtype] = r
    for r in rows:
        goal, holds = "", ""
        if r["backend"] == "cython" and r["dtype"] in ("float32", "float64"):
            limit = reads_goal(n_source)
            goal = f"reads <= {limit:g}"
            holds = _yes(r["reads"] <= limit)
        elif r["backend"] == "cython" and r["dtype"] in ("float16", "bfloat16"):
            goal = f"time <= {GOALS['float16']:g}x float32"
            single = compiled.get(("float32", r["level"]))
            if single is not None:
                ratio = r["seconds"] / single["seconds"]
                holds = f"{_yes(ratio <= GOALS['float16'])} ({ratio:.2f}x)"
        elif r["backend"] == "numba":
            goal = f"time <= {GOALS['numba']:g}x cython"
            if r["dtype"] in best:
                ratio = r["reads"] / best[r["dtype"]]["reads"]
                holds = f"{_yes(ratio <= GOALS['numba'])} ({ratio:.2f}x)"
        elif r["backend"] == "naive numpy":
            goal = "reference line"
        r["goal"], r["holds"] = goal, holds
    return rows


def _yes(ok):
    return "yes" if ok else "no"


def format_table(rows, n, n_source, n_target, n_threads):
    """The rows of :func:`run` as a Markdown table, with the goals of :func:`judge`."""
    from ._openmp import kernels_or_none

    _kernels = kernels_or_none()
    if _kernels is None:
        simd = ", read floor: a one-thread NumPy sum (no compiled extension)"
    else:
        simd = (
            f", SIMD level of the compiled backend per row (best on this CPU: "
            f"{_kernels.simd()})"
        )
    head = (
        f"LEEP, n={n}, Z={n_source}, Y={n_target}, {n_threads} threads{simd}; "
        "reads = time / one parallel read of the same array (exact floor: 2.0); "
        "x naive = the common NumPy code's time / time (a reference, no goal); "
        "goals from DESIGN.md section 5\n\n"
    )
    lines = [
        "| backend | level | dtype | ms | GB/s | reads | x naive | goal | holds |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in judge(rows, n_source):
        speed = "" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        lines.append(
            f"| {r['backend']} | {r['level'] or '-'} | {r['dtype']} | "
            f"{1e3 * r['seconds']:.1f} | {r['gb_per_s']:.2f} | {r['reads']:.2f} | "
            f"{speed} | {r['goal']} | {r['holds']} |"
        )
    return head + "\n".join(lines)
