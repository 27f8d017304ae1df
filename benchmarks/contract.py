"""The performance contract (DESIGN.md section 5): every line, measured in one run.

    python benchmarks/contract.py [--rounds 15] [--levels avx512,avx2,...] [--quick]
                                  [--public-logme DIR]

Run it outside the source tree's root (``cd /tmp && python .../benchmarks/contract.py``).
It prints one Markdown table: the SIMD level, the contract line, its target, the measured
figure and whether it holds. The per-level lines run for every SIMD level the CPU has,
capped through LEEPFAST_SIMD (a capped AVX-512 CPU runs the AVX2 rows but is not an AVX2
CPU: its memory system and clocks are the AVX-512 machine's); the lines that have no
level (Numba, the public code, the feature scores, memory) run uncapped, at the best one.

Every ratio compares times measured round-robin in the same rounds (a slow spell of a
shared machine then falls on both sides alike), as medians. "Reads" are a time divided
by ``_bench.read_floor`` of the same array with the same threads (one plain parallel sum:
an exact two-pass LEEP cannot go below 2.0). Sets of small arrays run ``--rounds``
rounds, each sample 50 ms of calls in a row (divided by their count); sets of large
arrays (n=100k x Z=1000, logits, Z=10, the sweep's arrays of 256 MB and more, the
feature scores) one call a sample in max(3, rounds // 5) rounds. The Numba and compiled
backends are timed in rounds of their own, apart from the floor runs (Numba's threads,
spinning after its calls, slow the next compiled call). ``--quick``: 6 rounds unless
``--rounds`` is given, and no n = 10M.

The public LogME line times ``LogME(regression=False).fit`` of thuml/LogME's LogME.py
from a local checkout given with ``--public-logme DIR`` (nothing is downloaded); without
it, the public algorithm as transcribed in benchmarks/test_bench_features.py (the table
says which one ran).
"""

import argparse
import subprocess
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

import leepfast
from leepfast import _bench, _reference
from leepfast._bench import GOALS
from leepfast._config import default_threads
from leepfast._tensors import as_floats, bfloat16_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_bench_features as features_bench  # noqa: E402  (benchmarks/, not a package)

# The contract's lines in DESIGN order: the table is sorted by line, then by level.
ORDER = [
    "reads headline",
    "reads sweep",
    "fixed cost",
    "float16",
    "logits",
    "logits accuracy",
    "Z=10",
    "Z=100",
    "Z=21843",
    "numba",
    "tllib",
    "torch",
    "naive",
    "features",
    "public logme",
    "memory",
    "stream",
]


class Table:
    """The rows of the report, printed in the contract's order."""

    def __init__(self, levels):
        self.levels = levels
        self.rows = []

    def add(self, key, level, line, target, measured, holds):
        """One row; ``holds`` None: a reference line without a target."""
        rank = self.levels.index(level) if level in self.levels else len(self.levels)
        self.rows.append(
            ((ORDER.index(key), rank, len(self.rows)), level, line, target, measured, holds)
        )

    def markdown(self):
        out = [
            "| level | contract line | target | measured | holds |",
            "|---|---|---|---|---|",
        ]
        for _, level, line, target, measured, holds in sorted(self.rows):
            mark = "-" if holds is None else ("yes" if holds else "no")
            out.append(f"| {level} | {line} | {target} | {measured} | {mark} |")
        return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Timing


def job(fn, *args, level=None, **kwargs):
    """A call to time, ``fn(*args, **kwargs)`` under the SIMD cap ``level`` (set once
    around the calls), as a function of ``seconds``: calls in a row until that long has
    passed (at least one), returning how many."""
    return partial(_loop, fn=fn, args=args, kwargs=kwargs, level=level)


def leep_job(theta, labels, y, threads, level=None, backend="cython", logits=False):
    """job() of one LEEP call: the contract's every timed LEEP."""
    return job(
        leepfast.leep,
        theta,
        labels,
        n_target=y,
        backend=backend,
        n_threads=threads,
        logits=logits,
        level=level,
    )


def _loop(seconds, fn, args, kwargs, level):
    with _bench.simd_cap(level):
        start, count = time.perf_counter(), 0
        while True:
            fn(*args, **kwargs)
            count += 1
            if time.perf_counter() - start >= seconds:
                return count


def medians(jobs, rounds, seconds=0.05):
    """Median seconds per call of each job, timed round-robin in the same rounds
    (``_bench.median_times``), each sample as many calls in a row as fit in ``seconds``
    (a call longer than that: one). With ``seconds`` > 0 each job is first called once
    to warm up; ``seconds=0``: one call a sample and no warm-up (large arrays, already
    in memory)."""
    if seconds:
        for fn in jobs.values():
            fn(0)
    return _bench.median_times(
        {name: partial(fn, seconds) for name, fn in jobs.items()}, rounds, per_call=True
    )


STARTED = time.perf_counter()


def log(what):
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {what}", file=sys.stderr, flush=True)


def ms(seconds):
    return f"{1e3 * seconds:.3g} ms" if seconds < 1 else f"{seconds:.2f} s"


def size(n):
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


# ---------------------------------------------------------------------------------------
# Inputs (fixed seeds)


def probabilities(n, z, y, dtype="float64", seed=0, tile=100_000):
    """Softmax rows (n, Z) of ``dtype`` (``_bench.make_predictions``, normalised in
    float64, then cast) and labels in [0, Y). Beyond ``tile`` rows the first ``tile``
    repeat (10M rows cost a copy, not 1e9 draws); the labels are drawn for every row."""
    head, _ = _bench.make_predictions(min(n, tile), z, y, "float64", seed)
    theta = np.empty((n, z), dtype=dtype)
    for start in range(0, n, len(head)):
        part = theta[start : start + len(head)]
        part[...] = head[: len(part)]
    return theta, np.random.default_rng(seed + 1).integers(0, y, n)


def normal_logits(n, z, y, seed=0, scale=3.0):
    """Random normal logits (n, Z) in float64 times ``scale``, and labels in [0, Y)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, z)) * scale, rng.integers(0, y, n)


def extreme_logits(n, z, y, big, seed=0):
    """Logits with entries of magnitude ``big`` (the largest of the dtype, for
    ``v - max`` to overflow in float64 at 1e308): a huge maximum, a huge minimum, rows
    all huge, as tests/test_softmax_levels.py builds them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, z)) * 5
    x[::4, 5] = big
    x[1::4, 7] = -big
    x[2::4, :] = big
    x[3::4, 3] = big
    x[3::4, z - 2] = -big
    return x, rng.integers(0, y, n)


def capped_leep(theta, labels, y, threads, level, logits=False, backend="cython"):
    with _bench.simd_cap(level):
        return leepfast.leep(
            theta, labels, n_target=y, backend=backend, n_threads=threads, logits=logits
        )


# ---------------------------------------------------------------------------------------
# LEEP on in-memory probabilities, per level


def reads_set(theta, labels, y, levels, threads, rounds, logits=False, seconds=0.0):
    """Per level, LEEP's time and its reads; one floor and every level round-robin."""
    jobs = {"floor": job(_bench.read_floor, theta, threads)}
    for level in levels:
        jobs[level] = leep_job(theta, labels, y, threads, level, logits=logits)
    m = medians(jobs, rounds, seconds)
    return {level: (m[level], m[level] / m["floor"]) for level in levels}, m["floor"]


def headline(table, data, levels, threads, rounds):
    """n=100k, Z=1000, Y=100: reads in float32 and float64, float16 / float32 (and
    bfloat16 / float32, held to float16's goal: both are 2 bytes a value)."""
    theta64, labels = data
    theta32, theta16 = theta64.astype(np.float32), theta64.astype(np.float16)
    thetab = bfloat16_of(theta64)
    jobs = {"floor float32": job(_bench.read_floor, theta32, threads)}
    for level in levels:
        for d, theta in (("float32", theta32), ("float16", theta16), ("bfloat16", thetab)):
            jobs[level, d] = leep_job(theta, labels, 100, threads, level)
    m = medians(jobs, rounds, 0)
    r64, floor64 = reads_set(theta64, labels, 100, levels, threads, rounds)
    goal = GOALS["reads"]
    for level in levels:
        t32 = m[level, "float32"]
        for d, t, floor in (
            ("float32", t32, m["floor float32"]),
            ("float64", r64[level][0], floor64),
        ):
            table.add(
                "reads headline",
                level,
                f"LEEP in reads, probabilities (n=100k, Z=1000, Y=100, {d})",
                f"<= {goal:g}",
                f"{t / floor:.2f} ({ms(t)} / {ms(floor)})",
                t / floor <= goal,
            )
        for d in ("float16", "bfloat16"):
            half = m[level, d] / t32
            table.add(
                "float16",
                level,
                f"{d} time / float32 time (n=100k, Z=1000, Y=100)",
                f"<= {GOALS['float16']:g}",
                f"{half:.2f} ({ms(m[level, d])} / {ms(t32)})",
                half <= GOALS["float16"],
            )
    return theta32, theta16, thetab


def sweep(table, sizes, levels, threads, rounds, heavy):
    """Reads at every n (Z=100, Y=10), float32 and float64; returns the float32
    reads at n=1M (the Z=100 small-head line). Arrays of 256 MB and more: ``heavy``
    rounds of one call; smaller ones: ``rounds`` of 50 ms of calls in a row."""
    reads = {}
    for d in ("float32", "float64"):
        for n in sizes:
            theta, labels = probabilities(n, 100, 10, d)
            big = theta.nbytes >= 1 << 28
            got, _ = reads_set(
                theta,
                labels,
                10,
                levels,
                threads,
                heavy if big else rounds,
                seconds=0 if big else 0.05,
            )
            for level in levels:
                reads[level, d, n] = got[level]
            del theta, labels
    goal = GOALS["reads"]
    for level in levels:
        for d in ("float32", "float64"):
            r = [reads[level, d, n][1] for n in sizes]
            table.add(
                "reads sweep",
                level,
                f"LEEP in reads, n = {' / '.join(size(n) for n in sizes)} "
                f"(Z=100, Y=10, {d})",
                f"<= {goal:g} at every n",
                " / ".join(f"{v:.2f}" for v in r),
                max(r) <= goal,
            )
    return {level: reads[level, "float32", 1_000_000] for level in levels}


def fixed_cost(table, levels, threads, rounds):
    """Per level, the time of a tiny call (n=10 rows), with the same threads and one."""
    theta, labels = probabilities(10, 100, 10, "float32")
    jobs = {}
    for level in levels:
        for t in sorted({threads, 1}, reverse=True):
            jobs[level, t] = leep_job(theta, labels, 10, t, level)
    m = medians(jobs, rounds, 0.05)
    for level in levels:
        us = 1e6 * m[level, threads]
        one = "" if threads == 1 else f" ({1e6 * m[level, 1]:.0f} us with 1 thread)"
        table.add(
            "fixed cost",
            level,
            f"fixed cost per call: one call on n=10 rows (Z=100, Y=10, float32), "
            f"{threads} threads, median of calls in a row",
            f"<= {GOALS['fixed_us']:g} us",
            f"{us:.0f} us{one}",
            us <= GOALS["fixed_us"],
        )


def small_heads(table, z10, z100, levels, threads, rounds):
    """Z=10 (n=4M) in reads, and Z=100 from the sweep's n=1M point."""
    theta, labels = z10
    got, _ = reads_set(theta, labels, 10, levels, threads, rounds)
    goal = GOALS["reads_small_head"]
    for level in levels:
        for key, (t, r), what in (
            ("Z=10", got[level], f"n={size(len(labels))}"),
            ("Z=100", z100[level], "n=1M, the sweep's point"),
        ):
            table.add(
                key,
                level,
                f"{key} in reads (Y=10, float32, {what})",
                f"<= {goal:g}",
                f"{r:.2f} ({ms(t)})",
                r <= goal,
            )


# ---------------------------------------------------------------------------------------
# Logits, per level


def logits_lines(table, logits, levels, threads, rounds):
    """Reads of float16/32/64 and bfloat16 logits (n=50k, Z=1000, Y=100), random
    normal times 3."""
    for d, (x, labels) in logits.items():
        got, floor = reads_set(x, labels, 100, levels, threads, rounds, logits=True)
        for level in levels:
            t, r = got[level]
            table.add(
                "logits",
                level,
                f"logits in reads (n=50k, Z=1000, Y=100, {d}, normal x 3)",
                f"<= {GOALS['logits_reads']:g}",
                f"{r:.2f} ({ms(t)} / {ms(floor)})",
                r <= GOALS["logits_reads"],
            )


def accuracy(table, levels, threads):
    """Logits against the float64 reference (``_reference.softmax`` then ``leep`` on the
    widened values), per level and dtype: normal logits; entries of the dtype's largest
    magnitude; -inf entries (a fifth of them, and a class masked in every row)."""
    n, z, y = 3000, 100, 10
    big = {"float16": 6e4, "float32": 3e38, "float64": 1e308, "bfloat16": 3e38}
    masked, masked_labels = normal_logits(n, z, y, seed=3)
    masked[np.random.default_rng(4).random(masked.shape) < 0.2] = -np.inf
    masked[:, 0] = 1.0  # a finite entry in every row
    masked[:, 7] = -np.inf  # a class masked everywhere
    worst = {}
    for level in levels:
        for d in big:
            cases = (
                normal_logits(n, z, y, seed=1),
                extreme_logits(n, z, y, big[d], seed=2),
                (masked, masked_labels),
            )
            for x, labels in cases:
                x = bfloat16_of(x) if d == "bfloat16" else x.astype(d)
                with np.errstate(over="ignore"):  # v - max is -inf at +-1e308: exp 0
                    ref = _reference.softmax(as_floats(x).astype(np.float64))
                ref = _reference.leep(ref, labels, y)
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # real logits: no "looks like" warning
                    got = capped_leep(x, labels, y, threads, level, logits=True)
                rel = abs(got - ref) / abs(ref)
                worst[level, d] = max(worst.get((level, d), 0.0), rel)
    for level in levels:
        w = [worst[level, d] for d in big]
        table.add(
            "logits accuracy",
            level,
            f"logits equal to the float64 reference (float16 / 32 / 64 / bfloat16; "
            f"n={n}, Z={z}: normal x 3, entries of +-6e4 / 3e38 / 1e308 / 3e38, 20% "
            f"-inf entries)",
            f"<= {GOALS['logits_rtol']:g} relative",
            "max " + " / ".join(f"{v:.1e}" for v in w),
            max(w) <= GOALS["logits_rtol"],
        )


# ---------------------------------------------------------------------------------------
# Not per level: numba, the public code, Z=21843, the feature scores, memory


def numba_lines(table, kinds, best, threads, rounds):
    """Numba time / compiled time on every input kind, each kind in its own rounds."""
    if "numba" not in leepfast.available_backends():
        table.add("numba", best, "numba time / compiled time", "<= 1.3", "no numba", None)
        return
    for kind, (theta, labels, y, logits) in kinds.items():
        calls = {
            b: leep_job(theta, labels, y, threads, backend=b, logits=logits)
            for b in ("cython", "numba")
        }
        for fn in calls.values():
            fn(1)  # numba compiles (or loads its cache) on first use
        m = medians(calls, rounds, 0)
        ratio = m["numba"] / m["cython"]
        table.add(
            "numba",
            best,
            f"numba time / compiled time ({kind})",
            f"<= {GOALS['numba']:g}",
            f"{ratio:.2f} ({ms(m['numba'])} / {ms(m['cython'])})",
            ratio <= GOALS["numba"],
        )


def tllib_leep(predictions, labels):
    """LEEP as tllib's ``log_expected_empirical_prediction`` documents it (written here
    from that description, not its code): the joint of the predictions divided by n,
    summed class by class, the conditional p(y | z) from its column sums, the expected
    empirical prediction ``predictions @ p(y | z)``, each sample's entry at its label
    picked in a Python loop, the mean of the logs."""
    n = predictions.shape[0]
    n_target = int(labels.max()) + 1
    normalized = predictions / float(n)
    joint = np.zeros((n_target, predictions.shape[1]))
    for c in range(n_target):
        joint[c] = normalized[labels == c].sum(axis=0)
    conditional = (joint / joint.sum(axis=0, keepdims=True)).T
    expected = predictions @ conditional
    picked = np.array([row[label] for row, label in zip(expected, labels, strict=True)])
    return float(np.mean(np.log(picked)))


def torch_leep(torch, predictions, labels, n_target):
    """The obvious PyTorch CPU code: joint by ``index_add_``, ``P @ C.T``, ``gather``."""
    p = predictions.double()
    joint = torch.zeros(n_target, p.shape[1], dtype=torch.float64)
    joint.index_add_(0, labels, p)
    joint /= p.shape[0]
    conditional = joint / joint.sum(dim=0, keepdim=True)
    expected = p @ conditional.T
    return float(torch.log(expected.gather(1, labels[:, None])).mean())


def public_lines(table, best, theta, labels, y, threads, rounds):
    """Against what users run, same process and array (n=100k, Z=1000, Y=100,
    float32): tllib's formula, PyTorch's obvious code with the same threads (when torch
    is installed), and the common naive NumPy code as a reference line. Each is checked
    to agree with leepfast first (on 10k rows)."""
    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(threads)

    def calls(theta, labels):
        fns = {
            "leepfast": partial(
                leepfast.leep, theta, labels, n_target=y, n_threads=threads
            ),
            "tllib": partial(tllib_leep, theta, labels),
        }
        if torch is not None:
            tp, tl = torch.from_numpy(theta), torch.from_numpy(labels.astype(np.int64))
            fns["torch"] = partial(torch_leep, torch, tp, tl, y)
        fns["naive"] = partial(_bench.naive_leep, theta, labels)
        return fns

    check = calls(theta[:10_000], labels[:10_000])
    value = check["leepfast"]()
    for name, fn in check.items():
        assert abs(fn() - value) <= 1e-6 * abs(value), name
    fns = calls(theta, labels)
    m = _bench.median_times(fns, rounds)
    what = "n=100k, Z=1000, Y=100, float32"
    for name, goal, text in (
        ("tllib", GOALS["tllib"], f"speedup over tllib's LEEP ({what})"),
        ("torch", GOALS["torch"], f"speedup over the obvious PyTorch CPU code ({what}"),
    ):
        if name == "torch":
            text += f", {threads} threads)"
        if name not in m:
            table.add(name, best, text, f">= {goal:g}x", "not installed", None)
            continue
        speedup = m[name] / m["leepfast"]
        table.add(
            name,
            best,
            text,
            f">= {goal:g}x",
            f"{speedup:.1f}x ({ms(m[name])} vs {ms(m['leepfast'])})",
            speedup >= goal,
        )
    speedup = m["naive"] / m["leepfast"]
    table.add(
        "naive",
        best,
        f"the common naive NumPy code (masked class sums, P @ C.T, gather; {what})",
        "reference line, no target",
        f"{speedup:.1f}x slower ({ms(m['naive'])} vs {ms(m['leepfast'])})",
        None,
    )


def huge_head(table, best, threads):
    """Z=21843, Y=1000 (ImageNet-21k heads onto 1000 classes) runs, n=2000."""
    theta, labels = probabilities(2000, 21843, 1000, "float32")
    start = time.perf_counter()
    value = leepfast.leep(theta, labels, n_target=1000, n_threads=threads)
    took = time.perf_counter() - start
    table.add(
        "Z=21843",
        best,
        "Z=21843, Y=1000 runs (n=2000, float32)",
        "runs",
        f"{took:.2f} s, LEEP {value:.4f}",
        bool(np.isfinite(value)),
    )


def load_public_logme(directory):
    """thuml/LogME's LogME.py from a local checkout, as benchmarks/public_scores.py
    loads it (imported, run unchanged)."""
    import public_scores

    modules, repo = public_scores.load_public([f"LogME={directory}"])["LogME"]
    cls = modules["LogME"].LogME
    return (lambda f, y: float(cls(regression=False).fit(f, y))), repo


def feature_lines(table, rounds, public_dir):
    """H-score, regularized H-score and LogME against one float64 F.T @ F (the cost of
    their sufficient statistics), and LogME against the public LogME."""
    f, y = features_bench._features("float64")
    n, d = f.shape
    what = f"n={size(n)}, D={d}, Y={int(y.max()) + 1}, float64"
    scores = {
        "H-score": leepfast.h_score,
        "regularized H-score": leepfast.regularized_h_score,
        "LogME": leepfast.logme,
    }
    jobs = {"gram": job(features_bench.gram, f)}
    jobs.update({name: job(fn, f, y) for name, fn in scores.items()})
    m = medians(jobs, rounds, 0)
    for name in scores:
        r = m[name] / m["gram"]
        table.add(
            "features",
            "-",
            f"{name} time / one float64 F.T @ F ({what})",
            f"<= {GOALS['features']:g}",
            f"{r:.2f} ({ms(m[name])} / {ms(m['gram'])})",
            r <= GOALS["features"],
        )
    if public_dir:
        public, label = load_public_logme(public_dir)
        label = f"the public LogME ({label}, LogME.py run unchanged)"
    else:
        public = features_bench.public_logme
        label = (
            "the public LogME algorithm (thuml/LogME _fit_fixed_point, transcribed in "
            "benchmarks/test_bench_features.py; --public-logme DIR runs the real one)"
        )
    # the two agree (checked on 5k rows; the full problem is timed below)
    ours, theirs = leepfast.logme(f[:5000], y[:5000]), public(f[:5000], y[:5000])
    m = _bench.median_times(
        {"leepfast": partial(leepfast.logme, f, y), "public": partial(public, f, y)}, 2
    )
    speedup = m["public"] / m["leepfast"]
    table.add(
        "public logme",
        "-",
        f"speedup of LogME over {label} ({what})",
        f">= {GOALS['public_logme']:g}x",
        f"{speedup:.1f}x ({ms(m['public'])} vs {ms(m['leepfast'])}; on 5k rows the "
        f"values differ by {abs(ours - theirs):.1e})",
        speedup >= GOALS["public_logme"],
    )


PEAK = """
import numpy as np, leepfast, sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
def reset():  # the peak from here on (else: VmHWM at the call counts)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status("VmRSS:")
    except OSError:
        return status("VmHWM:")
def extra(fn):
    base = reset()
    fn()
    return status("VmHWM:") - base
mode = sys.argv[1]
n, z, y, t = map(int, sys.argv[2:6])
theta = np.full((n, z), 1.0 / z, dtype=np.float32)
labels = np.arange(n, dtype=np.int64) % y
np.random.default_rng(0).shuffle(labels)
leepfast.leep(theta[:100], labels[:100], n_target=y, backend="cython", n_threads=t)
one = extra(lambda: leepfast.leep(theta, labels, n_target=y, backend="cython", n_threads=t))
if mode == "stream":
    budget, batches = int(sys.argv[6]), int(sys.argv[7])
    def stream():
        s = leepfast.Scorer(n_target=y, memory_budget=budget, backend="cython", n_threads=t)
        for _ in range(batches):
            s.add(theta, labels)
        s.result()
    print(one, extra(stream))
else:
    print(one)
"""


def peak(*args):
    out = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(v) for v in out.split()]


def memory_lines(table, best, threads):
    """Peak RSS growth of one call (VmHWM from /proc/self/clear_refs on, in a fresh
    process; the inputs are anonymous memory made before) at two n; and of a feed-once
    stream over a dump 4x its spill budget."""
    z, y = 1000, 100
    small, large = 50_000, 500_000
    a = peak("call", small, z, y, threads)[0]
    b = peak("call", large, z, y, threads)[0]
    mib = 2**20
    table.add(
        "memory",
        best,
        f"extra memory independent of n: peak RSS growth of one call at n = "
        f"{size(small)} / {size(large)} (Z={z}, Y={y}, float32)",
        "the same at 10x n (within 1 MiB)",
        f"{a / mib:.1f} / {b / mib:.1f} MiB",
        b <= a + mib,
    )
    rows, budget, batches = 1000, 32 * mib, 32
    one, stream = peak("stream", rows, z, y, threads, budget, batches)
    batch = rows * z * 4 + rows * 8
    added = stream - one
    table.add(
        "stream",
        best,
        f"a feed-once stream (Scorer, budget {budget // mib} MiB, {batches} batches of "
        f"{batch / mib:.1f} MiB = {batches * batch / budget:.0f}x the budget, Z={z}, "
        f"Y={y}): peak RSS growth beyond one call's",
        "<= budget + one batch",
        f"{added / mib:.1f} MiB of {(budget + batch) / mib:.1f} MiB "
        f"(stream {stream / mib:.1f}, one call {one / mib:.1f})",
        added <= budget + batch,
    )


# ---------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, help="rounds of the short sets (default 15)")
    p.add_argument(
        "--levels",
        default=",".join(_bench.cpu_levels()),
        help="comma-separated SIMD levels (default: every level of this CPU)",
    )
    p.add_argument(
        "--quick", action="store_true", help="6 rounds (unless --rounds), no n = 10M"
    )
    p.add_argument(
        "--public-logme",
        metavar="DIR",
        help="a local checkout of thuml/LogME, for the public LogME line",
    )
    args = p.parse_args(argv)
    rounds = args.rounds or (6 if args.quick else 15)
    heavy = max(3, rounds // 5)  # sets of large arrays
    started = time.perf_counter()
    threads = default_threads()
    levels = [v.strip().lower() for v in args.levels.split(",") if v.strip()]
    if not _bench.cpu_levels():
        p.error("the compiled extension is not importable: the contract measures it")
    bad = [v for v in levels if v not in _bench.cpu_levels()]
    if bad or not levels:
        p.error(f"--levels: {bad} not among this CPU's levels {_bench.cpu_levels()}")
    best = levels[0]
    table = Table(levels)

    # n=100k, Z=1000, Y=100: reads, float16 / float32, then the public code and numba
    # on the same arrays
    data = probabilities(100_000, 1000, 100)
    log("inputs n=100k, Z=1000")
    theta32, theta16, thetab = headline(table, data, levels, threads, heavy)
    log("reads and float16 at n=100k, Z=1000")
    public_lines(table, best, theta32, data[1], 100, threads, heavy)
    log("tllib, PyTorch, naive NumPy")

    # Z=10 (n=4M, 160 MB in float32) and logits (n=50k, Z=1000, Y=100)
    z10 = probabilities(4_000_000, 10, 10, "float32")
    x, labels = normal_logits(50_000, 1000, 100)
    logits = {d: (x.astype(d), labels) for d in ("float16", "float32", "float64")}
    logits["bfloat16"] = (bfloat16_of(x), labels)
    del x
    logits_lines(table, logits, levels, threads, heavy)
    log("logits")
    accuracy(table, levels, threads)
    log("logits accuracy")

    half = 50_000  # the first rows of the headline arrays: contiguous
    kinds = {
        f"{d} probabilities, n=50k, Z=1000": (theta[:half], data[1][:half], 100, False)
        for d, theta in (
            ("float16", theta16),
            ("bfloat16", thetab),
            ("float32", theta32),
            ("float64", data[0]),
        )
    }
    kinds.update({f"{d} logits, n=50k, Z=1000": (*logits[d], 100, True) for d in logits})
    kinds["float32 probabilities, Z=10, n=4M"] = (*z10, 10, False)
    numba_lines(table, kinds, best, threads, heavy)
    log("numba")
    del data, theta32, theta16, thetab, logits, kinds

    # n = 10k .. 10M (Z=100, Y=10), one array at a time; the small heads
    sizes = [10_000, 100_000, 1_000_000] + ([] if args.quick else [10_000_000])
    z100 = sweep(table, sizes, levels, threads, rounds, heavy)
    log("n sweep")
    small_heads(table, z10, z100, levels, threads, heavy)
    del z10
    log("Z=10")
    fixed_cost(table, levels, threads, rounds)
    log("fixed cost")

    huge_head(table, best, threads)
    log("Z=21843")
    feature_lines(table, heavy, args.public_logme)
    log("feature scores")
    memory_lines(table, best, threads)
    log("memory")

    took = time.perf_counter() - started
    print(
        f"DESIGN.md section 5 on this CPU ({_bench.cpu_levels()[0]}): levels "
        f"{', '.join(levels)}, {threads} threads, "
        f"{rounds} rounds ({heavy} for large arrays), {took:.0f} s\n"
    )
    print(table.markdown())


if __name__ == "__main__":
    main()
