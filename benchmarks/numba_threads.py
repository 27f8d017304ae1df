"""How the Numba backend's passes share two threads: wall time and each thread's CPU time.

    python benchmarks/numba_threads.py [--probabilities] [--rounds 10]
    NUMBA_THREADING_LAYER=workqueue python benchmarks/numba_threads.py

Calls the backend's ``accumulate`` (pass 1) and ``score`` (pass 2) on one block of 16k
float32 rows (logits by default, Z=1000, Y=100) with 2 threads, and prints, per pass,
the wall time of a call and the CPU time each thread of the process spent in it (from
/proc/self/task, Linux only). Two threads that share the work evenly show about half the
one-thread time each; threads that slow each other down show more. Run it under each
threading layer (and with OMP_PROC_BIND=true) to compare.
"""

import argparse
import os
import time

import numpy as np

from leepfast.backends import numba as nb

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu():
    """CPU seconds (user + system) of each thread of this process, by thread id."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probabilities", action="store_true", help="probabilities, not logits")
    p.add_argument("--rounds", type=int, default=10, help="calls per pass (default 10)")
    args = p.parse_args(argv)
    n, n_source, n_target, threads = 16_000, 1000, 100, 2
    rng = np.random.default_rng(0)
    logits = not args.probabilities
    if logits:
        block = rng.normal(0.0, 3.0, (n, n_source)).astype(np.float32)
    else:
        block = rng.random((n, n_source)).astype(np.float32)
        block /= block.sum(axis=1, keepdims=True)
    labels = rng.integers(0, n_target, n).astype(np.int64)
    conditional = rng.random((n_target, n_source))
    conditional /= conditional.sum(axis=0)
    joint = np.zeros((threads, n_target, n_source))
    hard = np.zeros((threads, n_target, n_source), dtype=np.int64)
    counts = np.zeros((threads, n_target), dtype=np.int64)
    tol = 1e-3

    def pass1():
        return nb.accumulate(block, labels, joint, hard, counts, logits, tol, threads)

    def pass2():
        return nb.score(block, labels, conditional, logits, tol, threads)

    pass1()
    pass2()  # compiled (or loaded from the cache) before timing
    kind = "logits" if logits else "probabilities"
    print(f"float32 {kind}, n={n}, Z={n_source}, Y={n_target}, {threads} threads")
    for name, fn in (("pass 1", pass1), ("pass 2", pass2)):
        before = thread_cpu()
        start = time.perf_counter()
        for _ in range(args.rounds):
            fn()
        wall = (time.perf_counter() - start) / args.rounds
        after = thread_cpu()
        spent = sorted(
            (after[t] - before.get(t, 0.0)) / args.rounds
            for t in after
            if after[t] > before.get(t, 0.0)
        )
        per_thread = " / ".join(f"{1e3 * s:.1f}" for s in spent)
        print(f"{name}: {1e3 * wall:.1f} ms a call; CPU ms a call by thread: {per_thread}")


if __name__ == "__main__":
    main()
