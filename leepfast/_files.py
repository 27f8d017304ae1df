"""The out-of-core driver of prediction dumps on disk (read by :mod:`leepfast.readers`).

:func:`score_files` runs pass 1 of an :class:`~leepfast.Accumulator` over every block
of every shard, finalizes, then runs pass 2 over the same blocks. Each block is a view of
the memory map (or one block-sized copy), used and dropped, so the extra anonymous memory
is one or two blocks plus the Y x Z state, whatever the size of the files.
"""

from dataclasses import replace

from . import _api, _driver, _state
from ._api import Result
from ._typing import LabelsLike, RowsLike
from .readers import Predictions, open_labels, open_predictions
from .readers.order import check_label_order

__all__ = ["FileRows", "score_files"]


# ---------------------------------------------------------------------------------------
# The row source of the driver


class FileRows:
    """The row source (see :mod:`leepfast._driver`) of opened predictions and labels:
    blocks of the maps, with the rows counted in their file in messages."""

    stable = False  # each pass re-reads the files: pass 2 counts its classes

    def __init__(self, preds, labels, block_size=None, large_views=False, logits=False):
        if labels.n_samples != preds.n_samples:
            files = len(preds.files)
            raise ValueError(
                f"{labels.where}: expected {preds.n_samples} labels (one per row of "
                f"the {files} prediction file{'s' if files > 1 else ''}), got "
                f"{labels.n_samples}"
            )
        self.preds, self.labels = preds, labels
        self.block_size, self.large_views = block_size, large_views
        self.logits = logits
        self.n_samples, self.n_source = preds.n_samples, preds.n_source
        self.nbytes = preds.nbytes

    def blocks(self):
        take = self.labels.reader()
        blocks = self.preds.blocks(self.block_size, self.large_views, self.logits)
        for f, _, start, rows in blocks:
            yield _driver.Block(rows, take(len(rows)), start, f" (file {f.path})")
            del rows


def score_files(
    predictions: RowsLike,
    labels: LabelsLike,
    *,
    n_target: int | None = None,
    logits: bool = False,
    dtype: str | None = None,
    n_source: int | None = None,
    key: str | None = None,
    backend: str = "auto",
    n_threads: int | None = None,
    block_size: int | None = None,
    progress: bool | None = None,
) -> Result:
    """LEEP, NCE and the joint of prediction dumps on disk, never loading one whole.

    Runs pass 1 over every block of every file, finalizes, then pass 2 over the same
    blocks; the same :class:`~leepfast.Result` as :func:`leepfast.score` on the
    concatenated arrays (to 1e-12 relative).

    Parameters
    ----------
    predictions : path, glob, directory, list of them, or Predictions
        The shards of one dataset in order (see :func:`open_predictions`): rows of
        float16, float32 or float64 probabilities, or logits with ``logits=True``.
    labels : path or array of shape (n_samples,), any integer dtype
        A 1-D integer ``.npy``, a text file with one integer per line, or an array
        (see :func:`open_labels`); one label in [0, n_target) per row.
    n_target : int, optional
        Y; default largest label + 1.
    logits : bool, default False
    dtype, n_source : optional
        For raw (non-.npy) files; see :func:`open_predictions`.
    key : str, optional
        The array of ``.npz`` files or the tensor of ``.safetensors`` files to score,
        when they hold several (see :func:`open_predictions`).
    backend : {"auto", "cython", "numba", "numpy"}, default "auto"
    n_threads : int, optional
        None or -1: all cores.
    block_size : int, optional
        Rows per block. Default: about 32 MiB of input per block, or about 1 GiB
        (at most 2^20 rows) for C-ordered native-endian files with a compiled backend
        (``cython``, ``numba``), whose blocks are views of the map. The extra
        anonymous memory is one or two copied blocks (Fortran order, byte-swapped)
        plus the O(n_threads * Y * Z) state, whatever the file size.
    progress : bool, optional
        Show a progress bar on stderr (rows, GB/s) once a run lasts a second; default:
        only when stderr is a terminal.

    Returns
    -------
    Result

    Raises
    ------
    FileNotFoundError, FileFormatError
        As :func:`open_predictions` and :func:`open_labels`.
    ValueError
        Label count different from the row count, labels out of range, NaN, negative or
        unnormalised rows: the message names the file and the row (counted from 0 in
        that file).
    KeyboardInterrupt
        Ctrl-C stops the run within one block.
    """
    own = not isinstance(predictions, Predictions)
    preds = (
        open_predictions(predictions, dtype=dtype, n_source=n_source, key=key)
        if own
        else predictions
    )
    try:
        return _drive(
            preds,
            open_labels(labels),
            n_target,
            logits,
            backend,
            n_threads,
            block_size,
            progress,
        )
    finally:
        if own:
            preds.close()


def _drive(preds, labels, n_target, logits, backend, n_threads, block_size, progress):
    _driver.block_rows(block_size, 1, 1)  # check block_size before any work
    source = FileRows(preds, labels, block_size, logits=logits)
    check_label_order(preds, labels)
    inferred = n_target is None
    n_target = labels.check_range(n_target)
    acc = _api.Accumulator(n_target, logits=logits, backend=backend, n_threads=n_threads)
    where = "" if labels.path is None else f" in {labels.path}"
    _state.check_state_fits(acc.n_slots, n_target, preds.n_source, where, inferred)
    acc.n_target_inferred = False  # checked and announced here, naming the label file
    source.large_views = acc.takes_large_views
    result = _driver.two_passes(acc, source, "result", progress)
    return result if labels.classes is None else replace(result, classes=labels.classes)
