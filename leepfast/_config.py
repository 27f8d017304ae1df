"""Thread counts and the build/run-time configuration report."""

import functools
import os
import sys
from typing import TextIO

import numpy as np

#: The SIMD levels of the compiled backend, lowest first (the C core's level numbers).
SIMD_LEVELS = ("scalar", "sse2", "avx2", "avx512")


def max_threads():
    """The largest team a call runs: 8 threads per logical CPU, and at least 64.

    More threads than cores never speed up a memory-bound pass, and a few thousand make
    OpenMP fail to create them (libgomp aborts or segfaults the process), so larger
    requests are clamped to this.
    """
    return max(64, 8 * _cpu_count())


@functools.cache
def _cpu_count():
    """The logical CPUs of the machine, asked once: ``os.cpu_count()`` reads /sys or
    /proc on every call (several microseconds, a good part of a small call's cost)."""
    return os.cpu_count() or 1


def default_threads():
    """All cores this process may use, or OMP_NUM_THREADS when it is set (clamped to
    :func:`max_threads`)."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), max_threads())
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return _cpu_count()


def simd_cap():
    """The SIMD cap from ``LEEPFAST_SIMD`` (unset or empty: no cap), as an index into
    :data:`SIMD_LEVELS`; read at every call, and passed down to the C core per call.

    Raises
    ------
    ValueError
        If ``LEEPFAST_SIMD`` is set to anything but a level name.
    """
    return simd_cap_of(os.environ.get("LEEPFAST_SIMD"))


@functools.lru_cache(maxsize=32)
def simd_cap_of(value):
    """The cap a value of ``LEEPFAST_SIMD`` names (None, unset, or blank: no cap), as
    :func:`simd_cap` gives it; a valid value is parsed once (a small call's cost)."""
    value = (value or "").strip()
    if not value:
        return len(SIMD_LEVELS) - 1
    try:
        return SIMD_LEVELS.index(value.lower())
    except ValueError:
        raise ValueError(
            f"LEEPFAST_SIMD: expected one of {', '.join(reversed(SIMD_LEVELS))} "
            f"(or unset), got {value!r}"
        ) from None


def resolve_threads(n_threads):
    """None or -1: all cores (OMP_NUM_THREADS respected); k >= 1: k threads.

    Absurd counts (``n_threads=100000``, ``OMP_NUM_THREADS=100000``) are clamped to
    :func:`max_threads`, never passed to OpenMP (which dies creating thousands of
    threads); the thread slots of pass 1 then equal the clamped team. The result never
    depends on the clamp beyond the 1e-12 agreement of different thread counts.
    """
    if n_threads is None:
        return default_threads()
    if type(n_threads) is int and 1 <= n_threads <= 64:  # never clamped: max_threads()
        return n_threads  # is at least 64
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
    return min(n_threads, max_threads())


def config():
    """The configuration as a dict: versions, backends, OpenMP, threads."""
    from . import __version__
    from .backends import available_backends

    info = {
        "leepfast": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "backends": available_backends(),
        "default_threads": default_threads(),
    }
    from . import _openmp

    _kernels = _openmp.kernels_or_none()
    if _kernels is None:
        info["cython_openmp"] = info["cython_simd"] = None
    else:
        info["cython_openmp"] = _kernels.openmp_enabled()
        if info["cython_openmp"]:
            info["openmp_waiting"] = _openmp.waiting
        info["cython_simd"] = _kernels.simd()
        try:
            info["simd_cap"] = SIMD_LEVELS[simd_cap()]
        except ValueError as error:
            info["simd_cap"] = f"invalid ({error})"
        else:
            info["simd_in_use"] = SIMD_LEVELS[_kernels.simd_effective(simd_cap())]
    try:
        from importlib.metadata import version

        info["numba"] = version("numba")
    except Exception:  # not installed
        info["numba"] = None
    return info


def show_config(file: TextIO | None = None) -> None:
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
        *(
            [f"OpenMP waits    {info['openmp_waiting']}"]
            if info.get("openmp_waiting")
            else []
        ),
        f"cython SIMD     {info['cython_simd'] or 'n/a (not built)'} (best on this CPU)",
        f"SIMD cap        {info.get('simd_cap') or 'n/a'} (LEEPFAST_SIMD)",
        f"SIMD in use     {info.get('simd_in_use') or 'n/a'}",
        f"default threads {info['default_threads']}",
    ]
    print("\n".join(lines), file=file or sys.stdout)
