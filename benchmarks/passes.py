"""The compiled backend's two passes against the read floor, on 1 and 2 threads.

    python benchmarks/passes.py [--dtype float32] [--n 100000] [--z 1000] [--y 100]

Times, in one process and round-robin (medians of --rounds), the read floor (a plain
parallel sum of the array, as the contract defines one read), pass 1 (``accumulate``)
and pass 2 (``score``) of the compiled backend on the same array, with 1 and then 2
threads, and prints each in GB/s and in reads. The whole ``leep`` call adds its
finalize and argument checks to the two passes.
"""

import argparse

import numpy as np

from leepfast._bench import median_times
from leepfast._openmp import load_kernels
from leepfast.backends import cython as cb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--z", type=int, default=1000)
    p.add_argument("--y", type=int, default=100)
    p.add_argument("--rounds", type=int, default=11)
    args = p.parse_args(argv)
    kernels = load_kernels()
    rng = np.random.default_rng(0)
    theta = rng.random((args.n, args.z)).astype(args.dtype)
    theta /= theta.sum(axis=1, keepdims=True, dtype=np.float64).astype(args.dtype)
    labels = rng.integers(0, args.y, args.n)
    conditional = rng.random((args.y, args.z))
    conditional /= conditional.sum(axis=0)
    gb = theta.nbytes / 1e9
    print(f"{args.dtype}, n={args.n}, Z={args.z}, Y={args.y}, {gb:.2f} GB")
    for threads in (1, 2):
        slots = cb.n_slots(threads)
        joint = np.zeros((slots, args.y, args.z))
        hard = np.zeros((slots, args.y, args.z), dtype=np.int64)
        counts = np.zeros((slots, args.y), dtype=np.int64)
        calls = {
            "read": lambda t=threads: kernels.read_floor(theta, t),
            "pass 1": lambda t=threads, j=joint, h=hard, c=counts: cb.accumulate(
                theta, labels, j, h, c, False, 1e-3, t
            ),
            "pass 2": lambda t=threads: cb.score(
                theta, labels, conditional, False, 1e-3, t
            ),
        }
        for fn in calls.values():
            fn()
        m = median_times(calls, args.rounds)
        line = "; ".join(
            f"{name} {1e3 * t:.1f} ms, {gb / t:.1f} GB/s, {t / m['read']:.2f} reads"
            for name, t in m.items()
        )
        print(f"{threads} thread{'s' if threads > 1 else ''}: {line}")


if __name__ == "__main__":
    main()
