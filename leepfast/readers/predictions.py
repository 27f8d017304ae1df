"""Prediction rows in one or more files (shards), read as one dataset in order.

Several files are one dataset, in the order given; a directory stands for its files and
a glob for the files it matches, sorted by name with numbers read as numbers (``part-2``
before ``part-10``; :mod:`leepfast.readers.order`). Each file is opened by the first
reader of :mod:`leepfast.readers.registry` that claims it.
"""

import glob
import os
from collections.abc import Sequence

from .._errors import FileFormatError
from . import containers, order, registry
from ._common import fail, is_npy, where, words


def expand(paths, role, conflicts=None):
    """The files that ``paths`` stands for, in order: a list as given, the files of a
    directory or the matches of a glob sorted with numbers read as numbers
    (:mod:`leepfast.readers.order`). ``conflicts`` gets ``(directory or glob, a, b)``
    for each one whose names sort differently as strings."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    try:
        paths = list(paths)
    except TypeError:
        raise TypeError(
            f"{role}: expected a path or a list of paths, got {type(paths).__name__}"
        ) from None
    if not paths:
        raise ValueError(f"{role}: expected at least one file, got none")
    files = []
    for p in paths:
        if not isinstance(p, (str, bytes, os.PathLike)):
            raise TypeError(f"{role}: expected paths, got {type(p).__name__}")
        p = os.fsdecode(os.fspath(p))  # a bytes path is a path, as for open()
        if containers.is_zarr_store(p):  # one array, read by the zarr reader
            files.append(p)
        elif os.path.isdir(p):
            found = order.natural_sorted(
                os.path.join(p, e)
                for e in os.listdir(p)
                if not e.startswith(".") and os.path.isfile(os.path.join(p, e))
            )
            if not found:
                raise FileNotFoundError(f"{role}: directory {p!r} holds no files")
            _refuse_strays(p, found, role)
            _note_order(conflicts, p, found)
            files += found
        elif os.path.exists(p) or not glob.has_magic(p):
            files.append(p)
        else:
            found = order.natural_sorted(f for f in glob.glob(p) if os.path.isfile(f))
            if not found:
                raise FileNotFoundError(f"{role}: no file matches {p!r}")
            _note_order(conflicts, p, found)
            files += found
    return files


def _refuse_strays(directory, found, role):
    """Refuse a directory of .npy shards that also holds other files (a README.txt, a
    log): read as raw rows, they would be asked for a dtype, or scored as floats."""
    if not any(f.lower().endswith(".npy") for f in found):
        return  # raw shards, or nothing that says otherwise
    strays = [f for f in found if not is_npy(f)]
    if strays:
        names = ", ".join(repr(os.path.basename(f)) for f in strays[:3])
        more = f" and {len(strays) - 3} more" if len(strays) > 3 else ""
        raise FileFormatError(
            f"{where(role, strays[0])}: is not a .npy file, in directory {directory!r} "
            f"of .npy shards, which holds {len(strays)} file(s) that are not .npy "
            f"({names}{more}): move them out of the folder, or pass the shards as a "
            f"glob ({os.path.join(directory, '*.npy')!r}) or a list",
            role,
        )


def _note_order(conflicts, source, found):
    pair = None if conflicts is None else order.disagreement(found)
    if pair is not None:
        conflicts.append((source, *pair))


class Predictions:
    """Prediction rows in one or more files (shards), read as one dataset in order.

    Made by :func:`open_predictions`. Every header and size has been checked and every
    file mapped read-only; nothing has been read yet.

    Attributes
    ----------
    files : list of PredictionFile
    n_samples : int
        Rows over all shards.
    n_source : int
        Z, the same in every shard.
    nbytes : int
        Bytes of prediction data over all shards.
    order_conflicts : list of (str, str, str)
        For each directory or glob whose files sort differently with numbers read as
        numbers and as strings: (the directory or glob, a, b), a before b read as
        numbers. Scored against labels from one file, such shards are refused
        (:func:`leepfast.readers.order.check_label_order`).
    """

    def __init__(self, files):
        self.files = files
        self.order_conflicts = []
        self.n_source = files[0].n_source
        for f in files[1:]:
            if f.n_source != self.n_source:
                fail(
                    f.role,
                    f.path,
                    f"has {f.n_source} {words(f.role)['columns']} "
                    f"(columns); expected {self.n_source}, as in {files[0].path}",
                )
        self.n_samples = sum(f.n_samples for f in files)
        self.nbytes = sum(f.nbytes for f in files)

    def __repr__(self):
        dtypes = sorted({f.stored for f in self.files})
        return (
            f"Predictions({len(self.files)} file(s), n_samples={self.n_samples}, "
            f"n_source={self.n_source}, dtype={'/'.join(dtypes)}, "
            f"nbytes={self.nbytes})"
        )

    def __len__(self):
        return self.n_samples

    def blocks(self, block_size=None, large_views=False, logits=False):
        """Yield ``(file, first dataset row of the file, first row in the file, block)``.

        ``block`` is a read-only (rows, n_source) view of the map when the file is
        C-ordered and native-endian (aligned or not); otherwise (Fortran order,
        big-endian, compressed) a C-ordered native copy in one block-sized
        buffer that the next block overwrites: use each block before asking for the
        next (copy it to keep it). Rows per block as in the
        in-memory API: ``block_size`` rows; by default about 32 MiB of input, or about
        1 GiB for views when ``large_views`` (the backend takes any block in place);
        16 times fewer bytes for ``logits``.
        """
        offset = 0
        for f in self.files:
            for start, block in f.blocks(block_size, large_views, logits):
                yield f, offset, start, block
                del block
            if len(self.files) > 1:
                f.release()  # one shard's map (and descriptor) at a time
            offset += f.n_samples

    def close(self):
        """Drop the maps (they are unmapped once no block refers to them)."""
        for f in self.files:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_predictions(
    paths: "str | os.PathLike[str] | Sequence[str | os.PathLike[str]]",
    *,
    dtype: str | None = None,
    n_source: int | None = None,
    key: str | None = None,
    role: str = "predictions",
) -> "Predictions":
    """Open prediction dumps (one file or shards) without reading them.

    Parameters
    ----------
    paths : path, glob or directory, or a list of them
        The shards of one dataset, in order: a list is read as given. A directory
        stands for its (non-hidden) files and a glob for its matches, each sorted by
        name with numbers read as numbers (``part-2`` before ``part-10``); names whose
        numeric and string orders disagree are listed in ``order_conflicts``, and
        refused against labels from one file
        (:func:`leepfast.readers.order.check_label_order`, which ``leepfast score``
        applies). Each file is read by the first reader that claims it
        (:mod:`leepfast.readers.registry`): ``.npy`` (a name ending in ``.npy`` or the
        .npy magic string; format 1.0 to 3.0, any byte order, C or Fortran order, never
        unpickled), ``.npz`` (one array; stored members mapped, compressed ones
        streamed), ``.safetensors`` (one tensor, F16/F32/F64/BF16); another known
        container (torch.save, pickle, HDF5, Parquet, Arrow, Zarr) is refused; any other
        file is read as raw rows of ``n_source`` values of ``dtype``.
    dtype : {"float16", "float32", "float64"} or numpy.dtype, optional
        Raw files: the value type, little-endian unless it says ``">"``. For ``.npy``
        files it must agree with the header if given.
    n_source : int, optional
        Raw files: values per row (Z); the number of rows is the file size divided by
        the row size. For ``.npy`` files it must agree with the header if given.
    key : str, optional
        The array of an ``.npz`` or the tensor of a ``.safetensors`` file to read (the
        same name in every shard); needed only when a file holds several.
    role : str, default "predictions"
        What the rows are, as messages name them (the feature scores pass "features").

    Returns
    -------
    Predictions
        With ``files``, ``n_samples``, ``n_source`` and ``nbytes``.

    Raises
    ------
    FileNotFoundError
        A path that does not exist, an empty directory, a glob without matches.
    FileFormatError (a ValueError)
        A file that is not what it claims: bad or pickled .npy header, a size that
        disagrees with the header, a raw size that is not a multiple of the row size,
        shards with different numbers of columns. The message names the file.
    """
    files, conflicts = [], []
    for path in expand(paths, role, conflicts):
        f = registry.open_rows(path, dtype=dtype, n_source=n_source, role=role, key=key)
        files.append(f)
    preds = Predictions(files)
    preds.order_conflicts = conflicts
    return preds


def is_file_source(obj):
    """Whether ``obj`` names rows on disk rather than holding them: a path (str or
    os.PathLike), a glob, a directory, a non-empty list of them, or an opened
    :class:`Predictions`."""
    if isinstance(obj, (str, os.PathLike, Predictions)):
        return True
    return (
        isinstance(obj, (list, tuple))
        and len(obj) > 0
        and all(isinstance(p, (str, os.PathLike)) for p in obj)
    )
