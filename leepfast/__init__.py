"""leepfast: exact LEEP and NCE transferability scores at memory bandwidth.

Architecture (each layer calls only the one below it; nothing imports the CLI):

    leep, nce, score, rank, Accumulator,   _api.py, _rank.py, _features.py, _files.py:
    feature scores, score_files             validate kinds and shapes once, stream row
          |                                 blocks through two passes (_driver.py),
          |                                 turn kernel statuses into exceptions
    file openers                            readers/: .npy, raw, shards, labels, one
          |                                 registry of row readers
    backends (one protocol, a registry)     backends/: cython (_kernels.pyx over the C99
                                            core), numba (lazy import), numpy
    the oracle                              _reference.py: formulas only
"""

__version__ = "0.1.0"


# first: the uncompiled source folder of a clone refuses to pass for the package
from . import _source_tree  # noqa: F401, I001

# The public names are resolved on first use (PEP 562), so that `import leepfast` stays
# light: the command line installs its signal handling before NumPy and the kernels load
# (a Ctrl-C or a failed import at start-up is then one line, not a traceback).
# name -> the module that defines it
_PUBLIC = {
    "ROW_SUM_TOLERANCE": "._api",
    "Accumulator": "._api",
    "Result": "._api",
    "leep": "._api",
    "nce": "._api",
    "score": "._api",
    "InputError": "._errors",
    "LabelError": "._errors",
    "NegativeValueError": "._errors",
    "NonFiniteError": "._errors",
    "PassMismatchError": "._errors",
    "RowSumError": "._errors",
    "ShapeError": "._errors",
    "StateSizeError": "._errors",
    "available_backends": ".backends",
    "show_config": "._config",
    "demo": "._demo",
    "FeatureAccumulator": "._features",
    "h_score": "._features",
    "logme": "._features",
    "regularized_h_score": "._features",
    "FileFormatError": "._errors",
    "open_labels": ".readers",
    "open_predictions": ".readers",
    "score_files": "._files",
    "get_include": "._include",
    "Ranking": "._rank",
    "rank": "._rank",
    "Scorer": "._scorer",
    "ScorerResult": "._scorer",
    "gbc": "._scores_more",
    "nleep": "._scores_more",
    "transrate": "._scores_more",
}


def __getattr__(name):
    """A public name, imported on first use; a submodule (``leepfast._files``,
    ``leepfast.backends``, ...) as after an eager import of the package."""
    import importlib

    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    elif name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise  # the submodule exists; something it imports does not
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ROW_SUM_TOLERANCE",
    "Accumulator",
    "FeatureAccumulator",
    "FileFormatError",
    "InputError",
    "LabelError",
    "NegativeValueError",
    "NonFiniteError",
    "PassMismatchError",
    "Ranking",
    "RowSumError",
    "ShapeError",
    "StateSizeError",
    "Result",
    "Scorer",
    "ScorerResult",
    "available_backends",
    "demo",
    "get_include",
    "gbc",
    "h_score",
    "leep",
    "logme",
    "nce",
    "nleep",
    "open_labels",
    "open_predictions",
    "rank",
    "regularized_h_score",
    "score",
    "score_files",
    "show_config",
    "transrate",
]
