"""Prediction dumps and labels on disk, read without ever loading a file whole.

- :mod:`.npy` (format versions 1.0 to 3.0, parsed here, never unpickled) and :mod:`.raw`
  (rows of ``n_source`` values of ``dtype``) are the row readers, tried in the order of
  :mod:`.registry` (which also states the row file protocol: a new format is one module);
- :mod:`.mapped`: the memory-mapped file of rows both readers open;
- :mod:`.predictions`: shards (a list, a directory, a glob) read as one dataset;
- :mod:`.order`: the order of the shards a directory or glob stands for;
- :mod:`.labels`: labels from a ``.npy``, a text file or an array;
- :mod:`.containers`: other formats recognised by their magic numbers and refused by
  name (npz, torch.save, pickle, safetensors, HDF5, Parquet, Arrow, Zarr, compressed).

Fortran-ordered ``.npy`` files are streamed correctly: a block of rows of an (n, Z)
Fortran array is a (Z, rows) slice of the C-ordered (Z, n) array on disk, one contiguous
run per source column, copied into one block-sized C-ordered buffer. Big-endian files
are converted block by block. Both cost one block of extra memory.
"""

from .._errors import FileFormatError
from .labels import Labels, open_labels
from .mapped import PredictionFile
from .predictions import Predictions, is_file_source, open_predictions

__all__ = [
    "FileFormatError",
    "Labels",
    "PredictionFile",
    "Predictions",
    "is_file_source",
    "open_labels",
    "open_predictions",
]
