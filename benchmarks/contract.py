"""The performance contract (DESIGN.md section 5), each line measured as a ratio in one run.

    python benchmarks/contract.py [--rounds 15] [--levels avx512,avx2,...]

The per-level lines run for every SIMD level the CPU has (through the LEEPFAST_SIMD
cap; a capped AVX-512 CPU runs the AVX2 rows but is not an AVX2 CPU: its memory system
and clocks are the AVX-512 machine's). Run it outside the source tree's root.

Everything that a ratio compares is timed round-robin in the same rounds (a slow spell
of a shared machine then falls on both sides alike) and the medians are compared. The
slow baselines (naive NumPy) run after the rounds. Prints a Markdown table: each line,
its target, the measured value and whether it holds.
"""

import argparse
import subprocess
import sys
import time
from functools import partial

import numpy as np

import leepfast
from leepfast import _bench
from leepfast._config import default_threads


def repeated(fn, seconds):
    """fn, called enough times in a row to last about ``seconds`` (per-call time)."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    count = max(1, int(seconds / once))

    def run():
        for _ in range(count):
            fn()

    return run, count


PEAK = """
import numpy as np, leepfast
def hwm():  # this process's peak resident memory (ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
n, z, y, t = {n}, {z}, {y}, {t}
rng = np.random.default_rng(0)
theta = rng.random((n, z), dtype=np.float32)
theta /= theta.sum(axis=1, keepdims=True)
labels = np.arange(n) % y
base = hwm()
leepfast.leep(theta, labels, n_target=y, backend="cython", n_threads=t)
print(hwm() - base)
"""


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


def public_lines(best, theta, labels, y, threads, rounds, floor):
    """The lines against what users run, measured in this process: tllib's formula, and
    PyTorch's obvious code with the same threads when torch is installed."""
    ours = partial(leepfast.leep, theta, labels, n_target=y, n_threads=threads)
    fns = {"leepfast": ours, "tllib": partial(tllib_leep, theta, labels)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        tp, tl = torch.from_numpy(theta), torch.from_numpy(labels.astype(np.int64))
        fns["torch"] = partial(torch_leep, torch, tp, tl, y)
        assert abs(fns["torch"]() - ours()) <= 1e-6 * abs(ours())
    assert abs(fns["tllib"]() - ours()) <= 1e-6 * abs(ours())
    m = _bench.median_times(fns, max(3, rounds // 3))
    out = []
    for name, goal in (("tllib", 15), ("torch", 10)):
        if name not in m:
            out.append((best, f"speedup over {name}", f">= {goal}x", "not installed", None))
            continue
        speedup = m[name] / m["leepfast"]
        out.append(
            (
                best,
                f"speedup over {name}'s LEEP ({threads} threads)",
                f">= {goal}x",
                f"{speedup:.1f}x ({1e3 * m[name]:.0f} ms vs {1e3 * m['leepfast']:.1f} ms;"
                f" {m[name] / floor:.1f} reads)",
                speedup >= goal,
            )
        )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument(
        "--levels",
        default=",".join(_bench.cpu_levels()),
        help="comma-separated SIMD levels (default: every level of this CPU)",
    )
    args = p.parse_args(argv)
    threads = default_threads()
    n, z, y = 100_000, 1000, 100
    lines = []
    best = (_bench.cpu_levels() or ["-"])[0]

    # the per-level lines: reads of float32 / float64 probabilities, float16 / float32,
    # float32 logits, and small heads (Z=10, Z=100), each level capped in turn
    levels = [v for v in args.levels.split(",") if v]
    per_level = {
        d: _bench.make_predictions(n, z, y, d) for d in ("float32", "float64", "float16")
    }
    heads = {
        zz: _bench.make_predictions(1_000_000 if zz == 10 else n, zz, 10, "float32")
        for zz in (10, 100)
    }
    for level in levels:

        def capped(theta, labels, yy, logits=False, level=level):
            with _bench.simd_cap(level):
                return leepfast.leep(
                    theta,
                    labels,
                    n_target=yy,
                    backend="cython",
                    n_threads=threads,
                    logits=logits,
                )

        fns = {
            f"floor {d}": partial(_bench.read_floor, a[0], threads)
            for d, a in per_level.items()
            if d != "float16"
        }
        fns.update({d: partial(capped, *per_level[d], y) for d in per_level})
        fns["logits"] = partial(capped, *per_level["float32"], y, True)
        for zz, (theta, labels) in heads.items():
            fns[f"floor Z={zz}"] = partial(_bench.read_floor, theta, threads)
            fns[f"Z={zz}"] = partial(capped, theta, labels, 10)
        m = _bench.median_times(fns, max(3, args.rounds // 3))
        for d in ("float32", "float64"):
            r = m[d] / m[f"floor {d}"]
            lines.append(
                (
                    level,
                    f"LEEP in reads (n=100k, Z=1000, Y=100, {d})",
                    "<= 2.2",
                    f"{r:.2f}",
                    r <= 2.2,
                )
            )
        half = m["float16"] / m["float32"]
        lines.append(
            (level, "float16 time / float32 time", "<= 0.6", f"{half:.2f}", half <= 0.6)
        )
        r = m["logits"] / m["floor float32"]
        lines.append((level, "float32 logits in reads", "<= 4", f"{r:.2f}", r <= 4))
        for zz in heads:
            r = m[f"Z={zz}"] / m[f"floor Z={zz}"]
            lines.append(
                (
                    level,
                    f"Z={zz} in reads (Y=10, n={len(heads[zz][1])})",
                    "<= 3",
                    f"{r:.2f}",
                    r <= 3,
                )
            )
    per_level.clear()
    heads.clear()

    # reads and float16 / float32: the compiled backend and the floor in one set of
    # rounds; numba / cython in another (numba's threads, spinning after its calls,
    # would slow the compiled backend's next call)
    data = {d: _bench.make_predictions(n, z, y, d) for d in ("float32", "float16")}

    def call(backend, d):
        theta, labels = data[d]
        return partial(
            leepfast.leep, theta, labels, n_target=y, backend=backend, n_threads=threads
        )

    fns = {
        "floor float32": partial(_bench.read_floor, data["float32"][0], threads),
        "cython float32": call("cython", "float32"),
        "cython float16": call("cython", "float16"),
    }
    m = _bench.median_times(fns, args.rounds)
    reads = m["cython float32"] / m["floor float32"]
    lines.append(
        (
            best,
            "LEEP in reads (n=100k, Z=1000, Y=100, float32)",
            "<= 2.2",
            f"{reads:.2f} ({1e3 * m['cython float32']:.1f} ms / "
            f"{1e3 * m['floor float32']:.1f} ms)",
            reads <= 2.2,
        )
    )
    half = m["cython float16"] / m["cython float32"]
    lines.append(
        (
            best,
            "float16 time / float32 time",
            "<= 0.6",
            f"{half:.2f} ({1e3 * m['cython float16']:.1f} / "
            f"{1e3 * m['cython float32']:.1f} ms)",
            half <= 0.6,
        )
    )
    if "numba" in leepfast.available_backends():
        pairs = {f"{b} {d}": call(b, d) for d in data for b in ("cython", "numba")}
        for fn in pairs.values():
            fn()  # numba compiles on first use
        mb = _bench.median_times(pairs, args.rounds)
        ratio = {d: mb[f"numba {d}"] / mb[f"cython {d}"] for d in data}
        lines.append(
            (
                best,
                "numba time / cython time",
                "<= 1.5",
                ", ".join(f"{d} {r:.2f}" for d, r in ratio.items()),
                max(ratio.values()) <= 1.5,
            )
        )
    theta, labels = data["float32"]
    naive_fn = partial(_bench.naive_leep, theta, labels)
    naive = _bench.median_times({"naive": naive_fn}, 3)["naive"]
    speedup = naive / m["cython float32"]
    lines.append(
        (
            best,
            "speedup over the naive NumPy implementation",
            ">= 20x",
            f"{speedup:.1f}x (naive {1e3 * naive:.0f} ms = "
            f"{naive / m['floor float32']:.1f} reads)",
            speedup >= 20,
        )
    )
    lines += public_lines(best, theta, labels, y, threads, args.rounds, m["floor float32"])
    data.clear()  # free the arrays before the next sizes
    del fns, theta, labels

    # time per row, n = 10k .. 10M (Z=100, Y=10): about 0.2 s per sample and size
    fns, rows = {}, {}
    for size in (10_000, 100_000, 1_000_000, 10_000_000):
        theta, labels = _bench.make_predictions(size, 100, 10, "float32")
        run, count = repeated(
            partial(
                leepfast.leep,
                theta,
                labels,
                n_target=10,
                backend="cython",
                n_threads=threads,
            ),
            0.2,
        )
        fns[size], rows[size] = run, size * count
    m = _bench.median_times(fns, max(5, args.rounds // 3))
    per_row = {size: 1e9 * m[size] / rows[size] for size in fns}
    spread = max(per_row.values()) / min(per_row.values())
    lines.append(
        (
            best,
            "time per row, n = 10k / 100k / 1M / 10M (Z=100, Y=10)",
            "within 20%",
            " / ".join(f"{v:.1f}" for v in per_row.values())
            + f" ns (max/min {spread:.2f})",
            spread <= 1.2,
        )
    )
    del fns

    # Z=21843, Y=1000 runs, and the extra memory of a large state
    theta, labels = _bench.make_predictions(2000, 21843, 1000, "float32")
    start = time.perf_counter()
    value = leepfast.leep(theta, labels, n_target=1000, n_threads=threads)
    took = time.perf_counter() - start
    lines.append(
        (
            best,
            "Z=21843, Y=1000 (n=2000)",
            "runs",
            f"{took:.2f} s, LEEP {value:.4f}",
            bool(np.isfinite(value)),
        )
    )
    del theta, labels
    nn, zz, yy = 2000, 21843, 1000
    extra = int(
        subprocess.run(
            [sys.executable, "-c", PEAK.format(n=nn, z=zz, y=yy, t=threads)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    budget = 64 * 2**20 + 2 * threads * yy * zz * 8
    lines.append(
        (
            best,
            f"extra memory (n={nn}, Z={zz}, Y={yy})",
            "<= 64 MiB + 2 x threads x Y x Z x 8 B",
            f"{extra / 2**20:.0f} MiB of {budget / 2**20:.0f} MiB",
            extra <= budget,
        )
    )

    print(f"{threads} threads, {args.rounds} rounds\n")
    print("| level | contract line | target | measured | holds |")
    print("|---|---|---|---|---|")
    for level, name, target, measured, ok in lines:
        print(f"| {level} | {name} | {target} | {measured} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
