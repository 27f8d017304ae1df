"""The compiled backend's two passes against the read floor, on 1 and 2 threads.

    python benchmarks/passes.py [--dtype float32] [--logits] [--pairs] [--n 100000]
                                [--z 1000] [--y 100]

Times, in one process and round-robin (medians of --rounds), the read floor (a plain
parallel sum of the array, as the contract defines one read), pass 1 (``accumulate``)
and pass 2 (``score``) of the compiled backend on the same array, with 1 and then 2
threads, and prints each in GB/s and in reads. The whole ``leep`` call adds its
finalize and argument checks to the two passes. Pass 1 is ``leep``'s, without pair
counts; ``--pairs`` times the one ``score`` and ``nce`` run, with them (and its argmax).

Each pass is also timed on one thread on the array's first rows only (4 MiB: they
stay in the cache from call to call), scaled to the whole array: the time the pass
would take on one thread if memory cost nothing; the 2-thread line shows half of it
(perfect scaling, so a lower bound: a block that small is one chunk of pass 2, which
one thread takes). Where that is as many reads as the pass from memory, the pass is
bound by its arithmetic, not by the memory, and no prefetching or layout brings it
below that figure on this CPU; where it is well below, memory is the limit. float16
probabilities take more rows in cache (64 a class, 12.5 MiB at Y=100): below that,
pass 1 leaves its fixed-point route for the general one.
"""

import argparse
from functools import partial

import numpy as np

from leepfast._bench import median_times, read_floor
from leepfast._tensors import bfloat16_of
from leepfast.backends import cython as cb

CACHED_BYTES = 4 << 20  # the in-cache rows: inside L3, beyond L2
FIXED_MIN_ROWS_PER_CLASS = 64  # leepfast.c's LF_FIXED_MIN_ROWS_PER_CLASS


def inputs(args):
    """The array (probability rows, or logits: normal x 3, the contract's) and labels."""
    rng = np.random.default_rng(0)
    if args.logits:
        theta = rng.standard_normal((args.n, args.z), dtype=np.float32) * 3
    else:
        theta = rng.random((args.n, args.z), dtype=np.float32)
        theta /= theta.sum(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    if args.dtype == "bfloat16":
        theta = bfloat16_of(theta)
    else:
        theta = theta.astype(args.dtype)
    return theta, rng.integers(0, args.y, args.n)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"]
    )
    p.add_argument("--logits", action="store_true", help="rows of logits (normal x 3)")
    p.add_argument(
        "--pairs", action="store_true", help="pass 1 with pair counts (score, nce)"
    )
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--z", type=int, default=1000)
    p.add_argument("--y", type=int, default=100)
    p.add_argument("--rounds", type=int, default=11)
    args = p.parse_args(argv)
    theta, labels = inputs(args)
    tol = 1e-2 if args.dtype in ("float16", "bfloat16") else 1e-3
    conditional = np.random.default_rng(1).random((args.y, args.z))
    conditional /= conditional.sum(axis=0)
    k = CACHED_BYTES // theta[0].nbytes
    if args.dtype == "float16" and not args.logits:  # pass 1's fixed-point route needs
        k = max(k, FIXED_MIN_ROWS_PER_CLASS * args.y)  # as many rows a call
    k = max(1, min(args.n, k))
    reps = args.n / k  # the in-cache time is scaled by this
    gb = theta.nbytes / 1e9
    kind = "logits" if args.logits else "probabilities"
    pairs = "with pair counts" if args.pairs else "no pair counts"
    print(
        f"{args.dtype} {kind}, n={args.n}, Z={args.z}, Y={args.y}, {gb:.2f} GB, {pairs}; "
        f"in cache: the first {k} rows ({theta[:k].nbytes / 2**20:.1f} MiB), x {reps:.0f}"
    )
    bound = {}  # the in-cache passes on one thread, scaled to the array
    calls_in_a_row = max(1, round(reps / 8))  # in cache: a few ms of calls a sample
    for threads in (1, 2):
        run = Passes(theta, labels, conditional, args.logits, tol, threads, args.pairs)
        jobs = {
            "read": partial(repeat, read_floor, 1, theta, threads),
            "pass 1": partial(repeat, run.pass1, 1, args.n),
            "pass 2": partial(repeat, run.pass2, 1, args.n),
        }
        if threads == 1:
            jobs["pass 1 in cache"] = partial(repeat, run.pass1, calls_in_a_row, k)
            jobs["pass 2 in cache"] = partial(repeat, run.pass2, calls_in_a_row, k)
        for fn in jobs.values():
            fn()
        m = median_times(jobs, args.rounds, per_call=True)
        for name in ("pass 1 in cache", "pass 2 in cache"):
            if threads == 1:
                bound[name] = m[name] * reps
            m[name] = bound[name] / threads
        line = "; ".join(
            f"{name} {1e3 * t:.1f} ms, {t / m['read']:.2f} reads"
            + ("" if "cache" in name else f" ({gb / t:.1f} GB/s)")
            for name, t in m.items()
        )
        print(f"{threads} thread{'s' if threads > 1 else ''}: {line}")


class Passes:
    """The two passes over the first ``rows`` rows, with slots for ``threads`` (and
    pair counts with ``pairs``)."""

    def __init__(self, theta, labels, conditional, logits, tol, threads, pairs):
        self.theta, self.labels, self.conditional = theta, labels, conditional
        self.logits, self.tol, self.threads = logits, tol, threads
        slots, (y, z) = cb.n_slots(threads), conditional.shape
        self.joint = np.zeros((slots, y, z))
        self.hard = np.zeros((slots, y, z), dtype=np.int64) if pairs else None
        self.counts = np.zeros((slots, y), dtype=np.int64)

    def pass1(self, rows):
        cb.accumulate(
            self.theta[:rows], self.labels[:rows], self.joint, self.hard, self.counts,
            self.logits, self.tol, self.threads,
        )  # fmt: skip

    def pass2(self, rows):
        cb.score(
            self.theta[:rows], self.labels[:rows], self.conditional, self.logits,
            self.tol, self.threads,
        )  # fmt: skip


def repeat(fn, calls, *args):
    """``fn(*args)`` ``calls`` times in a row; returns ``calls`` (median_times' count)."""
    for _ in range(calls):
        fn(*args)
    return calls


if __name__ == "__main__":
    main()
