"""The backends: one written protocol, one registry.

A backend is a module with exactly these members (the same names and parameters for
every backend; ``tests/test_backend_protocol.py`` checks them with :mod:`inspect`):

``TAKES_LARGE_VIEWS : bool``
    Whether the kernels take C-contiguous views of any size without temporaries of
    their size (the drivers then stream 1 GiB view blocks instead of 32 MiB copies).
``n_slots(n_threads) -> int``
    How many thread-local state slots T pass 1 uses.
``accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads)
-> (status, first_bad_row)``
    Pass 1 over one C-contiguous native-endian float16/32/64 block with int64 labels,
    into ``joint_sum`` (T, Y, Z) float64, ``hard`` (T, Y, Z) int64 and ``counts`` (T, Y)
    int64; ``hard`` None: no pair counts, and no argmax is taken (LEEP alone). Rows are
    validated in the kernel: label range, finiteness and, for probabilities, sign and
    row sum within ``tol``.
``score(block, labels, conditional, logits, tol, n_threads) -> (status, first_bad_row,
sum)``
    Pass 2: the sum over the block's rows of ``log(sum_z C[y_i, z] theta[i, z])``. Rows
    are validated exactly as in pass 1 (the same statuses and first bad row), so rows
    that differ from pass 1's can never give LEEP > 0.
``finalize(joint_sum, hard, counts) -> (joint, hard, class_counts, conditional,
column_sums, nce)``
    The slots reduced, C, the column sums of the joint and NCE (``hard`` None: None
    and NaN).

Statuses are those of ``leepfast._status`` (the C core's ``enum leepfast_status``).

A backend may also have ``both_passes(block, labels, joint_sum, hard, counts, logits,
tol, n_threads) -> (status, first_bad_row, finalized, total) or None``: pass 1,
``finalize`` and pass 2 of a block that is all of a run's rows in one call, with the
values of the three, bit for bit, or None (nothing done) for a block it leaves to
them (the compiled backend: small blocks, where the calls themselves cost more than
the rows). The :class:`~leepfast.Accumulator` uses it where it exists.
"""

import importlib
import importlib.util

from .._checks import warn

#: Backend names, fastest first; "auto" takes the first that is available.
BACKENDS = ("cython", "numba", "numpy")

#: The protocol: member name -> parameter names (None: a constant, not a function).
PROTOCOL = {
    "TAKES_LARGE_VIEWS": None,
    "n_slots": ("n_threads",),
    "accumulate": (
        "block",
        "labels",
        "joint_sum",
        "hard",
        "counts",
        "logits",
        "tol",
        "n_threads",
    ),
    "score": ("block", "labels", "conditional", "logits", "tol", "n_threads"),
    "finalize": ("joint_sum", "hard", "counts"),
}

_MODULES = {
    "cython": "leepfast.backends.cython",
    "numba": "leepfast.backends.numba",
    "numpy": "leepfast.backends.numpy",
}
_INSTALL_HINT = {
    "cython": "the compiled extension leepfast._kernels did not build or import; "
    "reinstall with a C compiler: pip install --force-reinstall --no-binary leepfast .",
    "numba": "numba is not installed: pip install 'leepfast[numba]'",
}
_WARNED = []


def _importable(name):
    """Whether the backend can be used here (numba: installed, checked without
    importing it, as listing backends must stay cheap)."""
    if name == "numba" and name not in _LOADED:
        return importlib.util.find_spec("numba") is not None
    return _loads(name)


def _loads(name):
    """Whether the backend's module imports (it is then imported, once)."""
    try:
        module(name)
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Names of the backends that can be used here, fastest first."""
    return [name for name in BACKENDS if _importable(name)]


def _choices():
    return f"one of 'auto', {', '.join(map(repr, BACKENDS))}"


def resolve(backend):
    """The backend name that ``backend`` ("auto" or a name) stands for.

    "auto" takes the first backend that imports; when that is only the NumPy backend,
    it warns once, naming what is missing (the compiled backends are 10-100x faster).
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected {_choices()}, got {type(backend).__name__}")
    if backend == "auto":
        missing = []
        for name in BACKENDS:
            if _importable(name) and _loads(name):
                return _warn_fallback(name, missing)
            missing.append(name)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected {_choices()}, got {backend!r}")
    if not (_importable(backend) and _loads(backend)):
        raise ImportError(
            f"backend={backend!r} is not available ({_INSTALL_HINT[backend]}); "
            f"available backends: {', '.join(available_backends())}"
        )
    return backend


def _warn_fallback(name, missing):
    if name == "numpy" and not _WARNED:
        _WARNED.append(True)
        warn(
            "leepfast: backend='auto' found only the NumPy backend, which is much "
            "slower; missing: "
            + "; ".join(f"{name} ({_INSTALL_HINT[name]})" for name in missing),
            RuntimeWarning,
        )
    return name


_LOADED = {}


def module(name):
    """The module implementing the backend ``name`` (imported once)."""
    mod = _LOADED.get(name)
    if mod is None:
        mod = _LOADED[name] = importlib.import_module(_MODULES[name])
    return mod
