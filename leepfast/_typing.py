"""Type aliases of the public signatures (annotations only: nothing here runs)."""

import os
from collections.abc import Sequence
from typing import Union

from numpy.typing import ArrayLike

#: A file name.
PathLike = Union[str, "os.PathLike[str]"]
#: Rows in memory (an array, a tensor, anything with ``__array__``) or on disk: a path,
#: a directory, a glob or a list of shards, or an opened ``leepfast.Predictions``.
RowsLike = Union[ArrayLike, PathLike, Sequence[PathLike], "leepfast.Predictions"]  # noqa: F821
#: Labels in memory (integers, integer-valued floats, strings) or a label file, or an
#: opened ``leepfast.Labels``.
LabelsLike = Union[ArrayLike, PathLike, "leepfast.Labels"]  # noqa: F821

__all__ = ["ArrayLike", "LabelsLike", "PathLike", "RowsLike"]
