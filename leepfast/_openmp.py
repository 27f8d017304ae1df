"""Loading the compiled extension: how long its OpenMP threads spin before they sleep.

GNU OpenMP (libgomp, loaded as the extension's dependency) reads its settings from the
environment once, when it is loaded. By default a thread that waits (at the end of a
parallel region for the team's other threads, or in the pool for the next region) spins
for GOMP_SPINCOUNT = 300,000 rounds, some milliseconds, before it sleeps. On a machine
whose cores all have other work (a shared server), the thread it waits for is then
queued behind the spinning one: each region lasts until the spinner's time slice ends,
and two threads burn twice the CPU time of one. Measured on a loaded 2-core machine,
float32, 2 threads, medians of interleaved processes: n=10k, Z=100, 3.57 ms a call
(3.9 ms of CPU) against 2.26 ms (2.1 ms) with 10,000 rounds; idle, 0.46 ms either way
(two regions a call follow each other within microseconds, well inside 10,000 rounds).
OMP_WAIT_POLICY=passive (no spinning) did better loaded but cost 0.3 ms a call idle at
n=10k (a futex wake per region on this virtual machine).

So the extension is loaded with GOMP_SPINCOUNT=10000 in the environment unless the user
set GOMP_SPINCOUNT or OMP_WAIT_POLICY, and the environment is restored right after (a
child process sees the user's own). Where libgomp was already loaded by another module,
its settings stay as they are.
"""

import os
import sys

#: libgomp's spin rounds before a waiting thread sleeps (its default: 300,000)
SPIN_COUNT = "10000"

_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")

#: what the first load of the extension asked libgomp for (``leepfast config`` shows it)
waiting = None


def load_kernels():
    """The compiled extension ``leepfast._kernels`` (ImportError where it is missing)."""
    global waiting
    if __package__ + "._kernels" in sys.modules:  # loaded: libgomp has read its settings
        from . import _kernels

        return _kernels
    users = [f"{name}={os.environ[name]}" for name in _USER_SETTINGS if name in os.environ]
    if users:
        from . import _kernels

        waiting = ", ".join(users) + " (yours)"
        return _kernels
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        from . import _kernels
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)
    waiting = f"GOMP_SPINCOUNT={SPIN_COUNT} (leepfast's, at load)"
    return _kernels


def kernels_or_none():
    """The compiled extension as :func:`load_kernels` loads it, or None where it is
    missing (the callers then take their NumPy way)."""
    try:
        return load_kernels()
    except ImportError:
        return None
