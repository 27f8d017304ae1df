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


# first: the uncompiled source folder of a clone refuses to pass for the package
from . import _source_tree  # noqa: F401, I001

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
from .backends import available_backends
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
