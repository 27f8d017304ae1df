"""Pass 1 and pass 2 of the Numba and compiled backends, called directly, one process.

    python benchmarks/numba_passes.py N Z Y DTYPE      e.g. 2000000 10 10 float32

Medians of 7 round-robin rounds, 2 threads; prints each pass's ms and numba/compiled.
"""

import sys
import time

import numpy as np

from leepfast import _reference
from leepfast.backends import cython as cy
from leepfast.backends import numba as nb


def main(n, n_source, n_target, dtype):
    rng = np.random.default_rng(0)
    theta = rng.random((n, n_source)) ** 4
    theta /= theta.sum(axis=1, keepdims=True)
    theta = theta.astype(dtype)
    y = rng.integers(0, n_target, n).astype(np.int64)
    tol = 1e-2 if dtype == "float16" else 1e-5
    joint = _reference.joint(theta.astype(np.float64), y, n_target)
    cond = np.ascontiguousarray(_reference.conditional(joint))

    def pass1(backend):
        state = (
            np.zeros((2, n_target, n_source)),
            np.zeros((2, n_target, n_source), np.int64),
            np.zeros((2, n_target), np.int64),
        )
        return backend.accumulate(theta, y, *state, False, tol, 2)

    calls = {
        "numba pass 1": lambda: pass1(nb),
        "compiled pass 1": lambda: pass1(cy),
        "numba pass 2": lambda: nb.score(theta, y, cond, False, tol, 2),
        "compiled pass 2": lambda: cy.score(theta, y, cond, False, tol, 2),
    }
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(7):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    ms = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    for name, value in ms.items():
        print(f"{name:16s} {value:9.1f} ms")
    for p in ("1", "2"):
        print(
            f"pass {p}: numba / compiled = "
            f"{ms[f'numba pass {p}'] / ms[f'compiled pass {p}']:.2f}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
