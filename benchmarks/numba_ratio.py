"""Numba backend time / compiled backend time on every input kind, in one process.

    python benchmarks/numba_ratio.py [--n 50000] [--repeat 7] [--threads 2]

Same array, same thread count, timed round-robin (numba, compiled, numba, ...), medians;
the DESIGN goal is a ratio <= 1.3 on every line. Not a test: no timed assertions.
"""

import argparse
import time

import numpy as np

import leepfast


def make(kind, n, n_source, n_target, dtype, rng):
    if kind == "logits":
        theta = (rng.normal(size=(n, n_source)) * 3).astype(dtype)
    else:
        theta = rng.random((n, n_source)) ** 4
        theta /= theta.sum(axis=1, keepdims=True)
        theta = theta.astype(dtype)
    return theta, rng.integers(0, n_target, n)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = []
    for kind in ("probabilities", "logits"):
        for dtype in ("float16", "float32", "float64"):
            cases.append((kind, dtype, args.n, 1000, 100))
    for dtype in ("float32", "float64"):
        cases.append(("probabilities", dtype, args.n * 40, 10, 10))
    print("| input | n x Z, Y | compiled ms | numba ms | numba / compiled |")
    print("|---|---|---|---|---|")
    for kind, dtype, n, n_source, n_target in cases:
        theta, labels = make(kind, n, n_source, n_target, dtype, rng)
        logits = kind == "logits"
        times = {"cython": [], "numba": []}
        for b in times:  # warm up (numba compiles or loads its cache)
            leepfast.leep(theta, labels, backend=b, logits=logits, n_threads=args.threads)
        for _ in range(args.repeat):
            for b in times:
                start = time.perf_counter()
                leepfast.leep(
                    theta, labels, backend=b, logits=logits, n_threads=args.threads
                )
                times[b].append(time.perf_counter() - start)
        c, m = (float(np.median(times[b])) * 1e3 for b in ("cython", "numba"))
        print(
            f"| {dtype} {kind} | {n} x {n_source}, {n_target} | {c:.1f} | {m:.1f} | "
            f"{m / c:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
