"""The dispatcher: it chooses a backend module and does nothing else.

Every backend module offers the same three functions:

    n_slots(n_threads) -> T
        how many thread-local state slots pass 1 uses;
    accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads)
        -> (status, first_bad_row)
        pass 1 over one C-contiguous native-endian float16/32/64 block with int64
        labels, into joint_sum (T, Y, Z) float64, hard (T, Y, Z) int64, counts (T, Y);
    score(block, labels, conditional, logits, n_threads) -> (status, first_bad_row, sum)
        pass 2: the sum over the block's rows of log(sum_z C[y_i, z] theta[i, z]).

Statuses are those of ``leepfast._status`` (the C core's ``enum leepfast_status``).
"""

import importlib
import importlib.util

BACKENDS = ("cython", "numba", "numpy")
_MODULES = {
    "cython": "leepfast._backend_cython",
    "numba": "leepfast._backend_numba",
    "numpy": "leepfast._reference",
}
_INSTALL_HINT = {
    "cython": "the compiled extension leepfast._kernels did not build or import; "
    "reinstall with a C compiler: pip install --force-reinstall --no-binary leepfast .",
    "numba": "numba is not installed: pip install 'leepfast[numba]'",
}


def _importable(name):
    if name == "numba":  # do not import numba just to list it
        return importlib.util.find_spec("numba") is not None
    try:
        importlib.import_module(_MODULES[name])
    except ImportError:
        return False
    return True


def available_backends():
    """Names of the backends that can be used here, fastest first."""
    return [name for name in BACKENDS if _importable(name)]


def resolve(backend):
    """The backend name that ``backend`` ("auto" or a name) stands for."""
    if not isinstance(backend, str):
        raise TypeError(
            f"backend: expected one of 'auto', {', '.join(map(repr, BACKENDS))}, "
            f"got {type(backend).__name__}"
        )
    if backend == "auto":
        for name in BACKENDS:
            if _importable(name):
                return name
    if backend not in BACKENDS:
        raise ValueError(
            f"backend: expected one of 'auto', {', '.join(map(repr, BACKENDS))}, "
            f"got {backend!r}"
        )
    if not _importable(backend):
        raise ImportError(
            f"backend={backend!r} is not available ({_INSTALL_HINT[backend]}); "
            f"available backends: {', '.join(available_backends())}"
        )
    return backend


_LOADED = {}


def module(name):
    """The module implementing the resolved backend ``name`` (imported once)."""
    mod = _LOADED.get(name)
    if mod is None:
        mod = _LOADED[name] = importlib.import_module(_MODULES[name])
    return mod
