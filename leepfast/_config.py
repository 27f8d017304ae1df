"""Thread counts and the build/run-time configuration report."""

import os
import sys

import numpy as np


def default_threads():
    """All cores this process may use, or OMP_NUM_THREADS when it is set."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_threads(n_threads):
    """None or -1: all cores (OMP_NUM_THREADS respected); k >= 1: k threads."""
    if n_threads is None:
        return default_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(
            f"n_threads: expected None or an integer, got {type(n_threads).__name__}"
        )
    n_threads = int(n_threads)
    if n_threads == -1:
        return default_threads()
    if n_threads < 1:
        raise ValueError(
            f"n_threads: expected None, -1 (all cores) or a positive integer, "
            f"got {n_threads}"
        )
    return n_threads


def config():
    """The configuration as a dict: versions, backends, OpenMP, threads."""
    from . import __version__
    from ._backends import available_backends

    info = {
        "leepfast": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "backends": available_backends(),
        "default_threads": default_threads(),
    }
    try:
        from . import _kernels

        info["cython_openmp"] = _kernels.openmp_enabled()
        info["cython_simd"] = _kernels.simd()
    except ImportError:
        info["cython_openmp"] = info["cython_simd"] = None
    try:
        from importlib.metadata import version

        info["numba"] = version("numba")
    except Exception:  # not installed
        info["numba"] = None
    return info


def show_config(file=None):
    """Print versions, available backends, OpenMP on or off, and the default threads."""
    info = config()
    openmp = {True: "on", False: "off (serial build)", None: "n/a (not built)"}
    lines = [
        f"leepfast        {info['leepfast']}",
        f"python          {info['python']}",
        f"numpy           {info['numpy']}",
        f"numba           {info['numba'] or 'not installed'}",
        f"backends        {', '.join(info['backends'])} (auto picks the first)",
        f"cython OpenMP   {openmp[info['cython_openmp']]}",
        f"cython SIMD     {info['cython_simd'] or 'n/a (not built)'}",
        f"default threads {info['default_threads']}",
    ]
    print("\n".join(lines), file=file or sys.stdout)
