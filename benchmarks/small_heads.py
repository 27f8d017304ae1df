"""Pass 1 and pass 2 of the compiled backend per SIMD level, in CPU time per row.

    python benchmarks/small_heads.py [--z 10,16,100] [--dtypes float32] [--rounds 9]

One thread, so that the process's CPU time is the kernels' own: on a shared machine
it moves far less than the wall clock (another job's time slices are not counted).
The read floor (a plain sum of the same array) is timed in the same rounds; the last
column is both passes in floors. To compare two builds, run the script once per build
with PYTHONPATH pointing at each (e.g. ``pip install --target DIR`` of the other tree).
Run it outside the source tree's root.
"""

import argparse
import time
from functools import partial

import numpy as np

from leepfast import _bench, _kernels
from leepfast._api import ROW_SUM_TOLERANCE
from leepfast._config import SIMD_LEVELS


def slots(n_target, n_source):
    return (
        np.zeros((1, n_target, n_source)),
        np.zeros((1, n_target, n_source), dtype=np.int64),
        np.zeros((1, n_target), dtype=np.int64),
    )


def pass1(block, labels, n_target, tol, level):
    state = slots(n_target, block.shape[1])
    got = _kernels.accumulate(block, labels, *state, False, tol, 1, level)
    assert got == (0, -1), got


def pass2(block, labels, cond, tol, level):
    got = _kernels.score(block, labels, cond, False, tol, 1, 1024, level)
    assert got[0] == 0, got


def measure(dtype, z, levels, rounds):
    """ns per row of pass 1, pass 2 per level and of the floor, one thread."""
    n = 1_000_000 if z <= 16 else 100_000
    y = 100 if z >= 1000 else 10
    theta, labels = _bench.make_predictions(n, z, y, dtype)
    block = theta.view(np.uint16) if dtype == "float16" else theta
    tol = ROW_SUM_TOLERANCE[np.dtype(dtype)]
    state = slots(y, z)
    _kernels.accumulate(block, labels, *state, False, tol, 1)
    cond = _kernels.finalize(*state)[3].copy()
    fns = {"floor": partial(_bench.read_floor, theta, 1)}
    for level in levels:
        index = SIMD_LEVELS.index(level)
        fns[f"{level} 1"] = partial(pass1, block, labels, y, tol, index)
        fns[f"{level} 2"] = partial(pass2, block, labels, cond, tol, index)
    m = _bench.median_times(fns, rounds, clock=time.process_time)
    return {name: 1e9 * seconds / n for name, seconds in m.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--z", default="10,16,100")
    p.add_argument("--dtypes", default="float32")
    p.add_argument("--levels", default=",".join(_bench.cpu_levels()))
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args(argv)
    levels = args.levels.split(",")
    print("| dtype | Z | level | pass 1 ns/row | pass 2 ns/row | floor ns/row | floors |")
    print("|---|---|---|---:|---:|---:|---:|")
    for dtype in args.dtypes.split(","):
        for z in (int(v) for v in args.z.split(",")):
            ns = measure(dtype, z, levels, args.rounds)
            for level in levels:
                one, two = ns[f"{level} 1"], ns[f"{level} 2"]
                print(
                    f"| {dtype} | {z} | {level} | {one:.2f} | {two:.2f} | "
                    f"{ns['floor']:.2f} | {(one + two) / ns['floor']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
