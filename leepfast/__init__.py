"""leepfast: exact LEEP and NCE transferability scores at memory bandwidth.

Architecture (each layer calls only the one below it):

    leep, nce, score, Accumulator          _api.py: validate kinds and shapes once,
          |                                 stream row blocks through two passes,
          |                                 turn kernel statuses into clear errors
    dispatcher                              _backends.py: picks a backend, nothing else
          |
    kernels (same two primitives each)      cython: _kernels.pyx over the C99 core
                                            numba:  _backend_numba.py (lazy import)
                                            numpy:  _reference.py (the oracle)
"""

__version__ = "0.1.0"

from ._api import ROW_SUM_TOLERANCE, Accumulator, Result, leep, nce, score
from ._backends import available_backends
from ._config import show_config
from ._demo import demo
from ._features import FeatureAccumulator, h_score, logme, regularized_h_score
from ._files import FileFormatError, open_labels, open_predictions, score_files
from ._include import get_include

__all__ = [
    "ROW_SUM_TOLERANCE",
    "Accumulator",
    "FeatureAccumulator",
    "FileFormatError",
    "Result",
    "available_backends",
    "demo",
    "get_include",
    "h_score",
    "leep",
    "logme",
    "nce",
    "open_labels",
    "open_predictions",
    "regularized_h_score",
    "score",
    "score_files",
    "show_config",
]
