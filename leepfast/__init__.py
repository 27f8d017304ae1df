"""leepfast: exact LEEP and NCE transferability scores at memory bandwidth.

Architecture (each layer calls only the one below it; nothing imports the CLI):

    leep, nce, score, rank, Accumulator,   _api.py, _rank.py, _features.py, _files.py:
    feature scores, file openers            validate kinds and shapes once, stream row
          |                                 blocks through two passes, turn kernel
          |                                 statuses into exceptions (_errors.py)
    backends (one protocol, a registry)     backends/: cython (_kernels.pyx over the C99
                                            core), numba (lazy import), numpy
    the oracle                              _reference.py: formulas only
"""

__version__ = "0.1.0"


def _refuse_the_source_folder():
    """Python started in a clone's root imports the uncompiled ``leepfast/`` folder, which
    would silently run the slow NumPy backend: say so, as NumPy does in its source tree.
    An in-place build (``pip install -e .``) has the compiled module here and passes."""
    import os
    from importlib.machinery import EXTENSION_SUFFIXES

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    in_a_clone = os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(
        os.path.join(root, "src_cython")
    )
    built = any(
        os.path.exists(os.path.join(here, "_kernels" + suffix))
        for suffix in EXTENSION_SUFFIXES
    )
    if in_a_clone and not built and not os.environ.get("LEEPFAST_ALLOW_SOURCE_TREE"):
        raise ImportError(
            f"leepfast: this is the source folder {here}, whose compiled backend is not "
            f"built; you are probably running Python from the clone's root. Run it from "
            f"another folder to use the installed leepfast (pip install . from the root "
            f"installs it), or build in place with pip install -e . "
            f"(LEEPFAST_ALLOW_SOURCE_TREE=1 imports the folder anyway, NumPy backend only)"
        )


_refuse_the_source_folder()

from ._api import ROW_SUM_TOLERANCE, Accumulator, Result, leep, nce, score
from ._errors import (
    InputError,
    LabelError,
    NegativeValueError,
    NonFiniteError,
    PassMismatchError,
    RowSumError,
    ShapeError,
    StateSizeError,
)
from ._backends import available_backends
from ._config import show_config
from ._demo import demo
from ._features import FeatureAccumulator, h_score, logme, regularized_h_score
from ._files import FileFormatError, open_labels, open_predictions, score_files
from ._include import get_include
from ._rank import Ranking, rank
from ._scorer import Scorer, ScorerResult
from ._scores_more import gbc, nleep, transrate

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
