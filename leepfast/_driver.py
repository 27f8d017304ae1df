"""The one loop over row blocks (DESIGN section 2).

Every input (in-memory arrays, prediction files and shards, the feature pass, dask chunk
tasks, the stream scorer's spill) is a *row source*: an object with ``n_samples``,
``n_source``, ``nbytes``, ``stable`` and ``blocks()``, which yields :class:`Block` s in
row order, afresh on every call. :func:`run_pass` feeds one pass of a source to a step
function, with the progress bar; :func:`two_passes` is the only place that runs LEEP's
two passes (pass 1, finalize, pass 2) over a source. Ctrl-C stops a run between two
blocks (the kernels return within one block).

The module knows nothing of backends, input checks or messages: the steps do.
"""

import sys
import time
from collections.abc import Iterator
from typing import NamedTuple, Protocol

import numpy as np

from ._checks import positive_int

#: Rows per block are chosen so that one block holds about this many bytes.
DEFAULT_BLOCK_BYTES = 32 << 20

#: ... or this many, when the blocks are views of a C-contiguous native-endian array and
#: the backend's kernels take any block without temporaries of its size: fewer calls
#: (every block ends in a barrier of the threads) while Ctrl-C still stops the run
#: within one block (about 0.1 s). At most VIEW_BLOCK_ROWS rows, which bounds the
#: block's int64 copy of labels of another integer dtype (8 MiB).
VIEW_BLOCK_BYTES = 1 << 30
VIEW_BLOCK_ROWS = 1 << 20

#: Logits cost up to about 20 times the reads of probabilities (an exp per value, in
#: both passes): their default blocks hold this many times fewer bytes, so a block takes
#: well under a second (Ctrl-C, the progress bar) whatever the input. Fixed, not timed:
#: block boundaries never depend on the machine's load, so results are reproducible.
LOGITS_COST = 16


def block_rows(block_size, n_source, itemsize, views=False, logits=False):
    """Rows per block: ``block_size`` if given (checked), else the default for rows of
    ``n_source`` values of ``itemsize`` bytes (``views``: blocks are views taken by a
    backend that needs no temporaries of their size; ``logits``: LOGITS_COST times
    fewer bytes)."""
    if block_size is None:
        row = n_source * itemsize * (LOGITS_COST if logits else 1)
        if views:
            return max(1, min(VIEW_BLOCK_ROWS, VIEW_BLOCK_BYTES // row))
        return max(1, DEFAULT_BLOCK_BYTES // row)
    return positive_int(block_size, "block_size")


class Block(NamedTuple):
    """One block of a row source."""

    #: (rows, n_source) values: a view where possible, else one block-sized copy
    rows: np.ndarray
    #: (rows,) integer labels
    labels: np.ndarray
    #: the number error messages give ``rows[0]`` (global, or counted in its file)
    first_row: int = 0
    #: appended to the argument names in messages, e.g. " (file part-3.npy)"
    where: str = ""


class RowSource(Protocol):
    """What the drivers read (the module docstring): the sizes, whether its blocks are
    the same rows on every call (``stable``: pass 2 may then skip the class counts), and
    the blocks, in row order, afresh on every call. A source may also say how many
    blocks it gives (``n_blocks``): a stable source of one block may then have both
    passes run in one call (:func:`two_passes`)."""

    n_samples: int
    n_source: int
    nbytes: int
    stable: bool

    def blocks(self) -> Iterator[Block]: ...


class ArraySource:
    """Blocks of in-memory arrays (checked by the caller), as views.

    ``stable``: both passes see the very same rows, so pass 2 need not count classes.
    """

    stable = True

    def __init__(self, rows, labels, n_rows, first_row=0):
        self.rows, self.labels = rows, labels
        self.n_rows, self.first_row = n_rows, first_row
        self.n_samples, self.n_source = rows.shape
        self.nbytes = rows.nbytes
        self.n_blocks = -(-self.n_samples // n_rows)

    def blocks(self):
        rows, labels, step = self.rows, self.labels, self.n_rows
        if step >= self.n_samples:  # one block: the arrays themselves
            yield Block(rows, labels, self.first_row)
            return
        for start in range(0, self.n_samples, step):
            yield Block(
                rows[start : start + step],
                labels[start : start + step],
                self.first_row + start,
            )


class Progress:
    """A tqdm bar on stderr (rows and GB/s), shown only after a second of work.

    ``enabled``: True, False, or None for "when stderr is a terminal".
    """

    def __init__(self, enabled, source, passes=2):
        self.bar = None
        self.n = source.n_samples
        self.passes = passes
        self.start, self.bytes = time.perf_counter(), 0
        if enabled is None:
            enabled = sys.stderr is not None and sys.stderr.isatty()
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=passes * source.nbytes,
                unit_scale=1e-9,  # counted in bytes, shown in GB
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} GB "
                "[{elapsed}<{remaining}{postfix}]",
                delay=1.0,
                leave=False,
                file=sys.stderr,
                desc="leepfast",
                mininterval=0.2,
                dynamic_ncols=True,
            )

    def update(self, pass_, rows_done, nbytes):
        if self.bar is not None:
            self.bytes += nbytes
            seconds = time.perf_counter() - self.start
            rate = self.bytes / seconds / 1e9 if seconds > 0 else 0.0
            self.bar.set_postfix_str(
                f"pass {pass_}/{self.passes}, rows {rows_done:,}/{self.n:,}, "
                f"{rate:.2f} GB/s",
                refresh=False,
            )
            self.bar.update(nbytes)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_pass(step, source, pass_=1, progress=None):
    """Feed every block of ``source`` to ``step(block)``, in order."""
    done = 0
    for block in source.blocks():
        step(block)
        done += len(block.labels)
        if progress is not None:
            progress.update(pass_, done, block.rows.nbytes)
        del block  # a map's pages are released once no block refers to them


def two_passes(acc, source, what="result", progress=False):
    """LEEP's two passes of an :class:`~leepfast.Accumulator` over a row source.

    ``what``: "nce" (pass 1 only), "leep" (the value alone) or "result" (the
    :class:`~leepfast.Result`). ``progress``: as :class:`Progress` (default: no bar).
    """
    count = not source.stable
    bar = shown = None
    try:
        if (
            what != "nce"
            and not count
            and progress is False
            and getattr(source, "n_blocks", None) == 1
        ):
            # one block, the same rows in both passes, no bar to move between them:
            # pass 2 may run in pass 1's call (the accumulator's ``whole``: one compiled
            # call for both passes where the backend has it)
            for block in source.blocks():
                acc._step(1, block, whole=True)
        else:
            bar = Progress(progress, source, passes=1 if what == "nce" else 2)
            shown = bar if bar.bar is not None else None  # no bar: no update per block
            run_pass(lambda block: acc.step(1, block), source, 1, shown)
        if acc.phase == "accumulate":  # pass 2 did not run with pass 1
            acc.finalize()
            if what == "nce":
                return acc.nce
            run_pass(lambda block: acc.step(2, block, count=count), source, 2, shown)
    finally:
        if bar is not None:
            bar.close()
    if not count:
        acc.pass2.same_rows_as_pass1()
    return acc.pass2.leep if what == "leep" else acc.result()
