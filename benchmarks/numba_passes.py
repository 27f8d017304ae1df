"""Pass 1 and pass 2 of the Numba and compiled backends, called directly, one process.

    python benchmarks/numba_passes.py N Z Y DTYPE      e.g. 2000000 10 10 float32

Medians of 7 round-robin rounds, 2 threads; prints each pass's ms and numba/compiled.
(The compiled score is called with the pre-`tol` signature until the C side takes it.)
"""
import time, numpy as np, sys
from leepfast import _reference
from leepfast.backends import cython as cy
from leepfast.backends import numba as nb
rng = np.random.default_rng(0)
n, Z, Y = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
dtype = sys.argv[4]
theta = rng.random((n, Z)) ** 4; theta /= theta.sum(axis=1, keepdims=True); theta = theta.astype(dtype)
y = rng.integers(0, Y, n).astype(np.int64)
tol = 1e-2 if dtype == "float16" else 1e-5
C = np.ascontiguousarray(_reference.conditional(_reference.joint(theta.astype(np.float64), y, Y)))
def _compiled_score(theta, y, C, tol):
    import inspect
    if "tol" in inspect.signature(cy.score).parameters:
        return cy.score(theta, y, C, False, tol, 2)
    return cy.score(theta, y, C, False, 2)


def p1(b):
    j = np.zeros((2, Y, Z)); h = np.zeros((2, Y, Z), np.int64); c = np.zeros((2, Y), np.int64)
    return b.accumulate(theta, y, j, h, c, False, tol, 2)
fns = {"nb1": lambda: p1(nb), "cy1": lambda: p1(cy),
       "nb2": lambda: nb.score(theta, y, C, False, tol, 2), "cy2": lambda: _compiled_score(theta, y, C, tol)}
for f in fns.values(): f()
t = {k: [] for k in fns}
for _ in range(7):
    for k, f in fns.items():
        s = time.perf_counter(); f(); t[k].append(time.perf_counter() - s)
m = {k: np.median(v) * 1e3 for k, v in t.items()}
print(sys.argv[1:], " ".join(f"{k} {v:.1f}" for k, v in m.items()), f"p1 {m['nb1']/m['cy1']:.2f} p2 {m['nb2']/m['cy2']:.2f}")
