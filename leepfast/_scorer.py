"""Feed once: score batches as they come out of a forward pass.

LEEP needs two passes (pass 2 needs the conditional of all of pass 1). A
:class:`Scorer` runs pass 1 on each batch as it is added and keeps the batch itself in a
spill it owns: in memory up to ``memory_budget`` bytes, then in a temporary file in
``spill_dir`` (the input dtype kept: float16 stays 2 bytes a value). :meth:`Scorer.result`
runs pass 2 over the spill. The spill file is unlinked the moment it is created, so
nothing is left behind whatever happens (a result, an exception, Ctrl-C, garbage
collection, even a killed process); its memory is freed when the scorer is closed.
Pass 2 validates the spilled rows like any row source, and the file's size is checked
before it is read back.
"""

import os
import tempfile
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._api import Accumulator, Result, _native_block, check_labels, check_predictions
from ._checks import check_flag
from ._driver import Block, run_pass
from ._errors import FileChangedError

#: Default bytes of batches kept in memory before the spill moves to a file.
DEFAULT_MEMORY_BUDGET = 256 << 20


@dataclass(frozen=True, repr=False, eq=False)
class ScorerResult:
    """LEEP and NCE (``result``, a :class:`~leepfast.Result`) and, when features were
    added, H-score, regularized H-score and LogME (None otherwise)."""

    result: Result
    h_score: float | None = None
    regularized_h_score: float | None = None
    logme: float | None = None

    @property
    def leep(self):
        return self.result.leep

    @property
    def nce(self):
        return self.result.nce

    def to_dict(self) -> dict:
        """The scalars only."""
        out = self.result.to_dict()
        for name in ("h_score", "regularized_h_score", "logme"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        return out

    def __repr__(self):
        extra = "".join(
            f", {name}={getattr(self, name):.6g}"
            for name in ("h_score", "regularized_h_score", "logme")
            if getattr(self, name) is not None
        )
        return f"ScorerResult(leep={self.leep:.6g}, nce={self.nce:.6g}{extra})"


class _Spill:
    """Batches kept for pass 2: in memory up to a budget, then in an unlinked file."""

    def __init__(self, budget, spill_dir):
        self.budget = budget
        self.spill_dir = spill_dir
        self.in_memory = 0  # bytes held in memory
        self.segments = []  # (rows, labels) in memory, or (offset, dtype, shape, labels)
        self.file = None
        self.size = 0  # bytes written to the file

    def add(self, block, labels):
        nbytes = block.nbytes + labels.nbytes
        if self.file is None and self.in_memory + nbytes <= self.budget:
            # a copy: the caller may reuse its buffer for the next batch
            self.segments.append((np.array(block, order="C"), labels.copy()))
            self.in_memory += nbytes
            return
        if self.file is None:
            # unlinked at once (O_TMPFILE where the system has it): nothing can survive
            self.file = tempfile.TemporaryFile(prefix="leepfast-spill-", dir=self.spill_dir)
        data = np.ascontiguousarray(block)
        offset = self.size
        self.file.seek(offset)
        self.file.write(memoryview(data).cast("B"))
        self.file.write(memoryview(np.ascontiguousarray(labels)).cast("B"))
        self.file.flush()
        self.size += data.nbytes + labels.nbytes
        self.segments.append((offset, data.dtype, data.shape, labels.dtype))

    def blocks(self):
        """The batches as :class:`~leepfast._driver.Block` s, in the order they were
        added, one at a time (the spill is the row source of pass 2).

        A batch read back from the file is released before the next is read (the
        driver drops each block before asking for the next), so the spill's memory is
        its budget plus one batch, never two.
        """
        if self.file is not None:
            found = os.fstat(self.file.fileno()).st_size
            if found != self.size:
                folder = self.spill_dir or tempfile.gettempdir()
                raise FileChangedError(
                    f"spill: the temporary file in {folder} "
                    f"holds {found} bytes, expected {self.size}; it was changed while "
                    f"scoring",
                    "spill_dir",
                )
        first = 0
        for segment in self.segments:
            if len(segment) == 2:
                yield Block(*segment, first)
                first += len(segment[1])
                continue
            offset, dtype, shape, label_dtype = segment
            rows = np.empty(shape, dtype=dtype)
            labels = np.empty(shape[0], dtype=label_dtype)
            for out, at in ((rows, offset), (labels, offset + rows.nbytes)):
                view = memoryview(out).cast("B")
                got = os.preadv(self.file.fileno(), [view], at) if out.nbytes else 0
                if got != out.nbytes:
                    raise FileChangedError(
                        f"spill: the temporary file ended early ({got} of "
                        f"{out.nbytes} bytes at offset {at}); it was changed while "
                        f"scoring",
                        "spill_dir",
                    )
            yield Block(rows, labels, first)
            first += len(labels)
            del rows, labels, view, out  # released before the next batch is allocated

    def close(self):
        self.segments = []
        self.in_memory = 0
        if self.file is not None:
            self.file.close()
            self.file = None


class Scorer:
    """LEEP, NCE and the feature scores from batches fed once (a forward pass).

    Parameters
    ----------
    n_target : int, optional
        Y. By default max(label) + 1 over the batches.
    features : bool, default False
        Whether :meth:`add` also receives features (for H-score, regularized H-score
        and LogME, which need one pass and no spill).
    logits : bool, default False
        The predictions are logits.
    backend, n_threads
        As in :func:`leepfast.leep`.
    spill_dir : str or path, optional
        Folder of the spill file (default: the system's temporary folder). The file is
        unlinked at creation: it never shows in the folder and never outlives the run.
    memory_budget : int, default 256 MiB
        Bytes of batches (predictions and labels) kept in memory before the spill moves
        to the file. Peak extra memory is about this plus one batch.

    Examples
    --------
    >>> scorer = Scorer(features=True)
    >>> for x, y in loader:                       # doctest: +SKIP
    ...     logits, penultimate = model(x)
    ...     scorer.add(softmax(logits), y, features=penultimate)
    >>> scorer.result()                           # doctest: +SKIP
    ScorerResult(leep=-1.23, nce=-0.98, h_score=..., regularized_h_score=..., logme=...)
    """

    def __init__(
        self,
        n_target: int | None = None,
        *,
        features: bool = False,
        logits: bool = False,
        backend: str = "auto",
        n_threads: int | None = None,
        spill_dir: "str | os.PathLike[str] | None" = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        self._spill = None  # first: __del__ runs even when the checks below raise
        self.features = check_flag(features, "features")
        if spill_dir is not None:
            spill_dir = os.fsdecode(os.fspath(spill_dir))
            if not os.path.isdir(spill_dir):
                raise NotADirectoryError(
                    f"spill_dir: expected an existing folder, got {spill_dir!r}"
                )
        if isinstance(memory_budget, bool) or not isinstance(
            memory_budget, (int, np.integer)
        ):
            raise TypeError(
                f"memory_budget: expected bytes as an integer >= 0, "
                f"got {type(memory_budget).__name__}"
            )
        if memory_budget < 0:
            raise ValueError(
                f"memory_budget: expected bytes as an integer >= 0, got {memory_budget}"
            )
        self._acc = Accumulator(
            n_target, logits=logits, backend=backend, n_threads=n_threads
        )
        self._spill = _Spill(int(memory_budget), spill_dir)
        self._feature_acc = None
        if self.features:
            from ._features import FeatureAccumulator

            self._feature_acc = FeatureAccumulator(n_target)
        self._done = None

    @property
    def n_samples(self):
        return self._acc.n_samples

    def add(
        self, predictions: ArrayLike, labels: ArrayLike, features: ArrayLike | None = None
    ) -> "Scorer":
        """Pass 1 over a batch (and the feature statistics); the batch is spilled for
        pass 2. Inputs are never modified."""
        if self._done is not None:
            raise RuntimeError("add: result() was already called")
        if self._spill is None:
            raise RuntimeError("add: the scorer is closed")
        predictions = check_predictions(predictions)
        labels = check_labels(labels, predictions.shape[0])
        if self.features and features is None:
            raise TypeError(
                "features: expected an array, as Scorer(features=True), got None"
            )
        if not self.features and features is not None:
            raise TypeError("features: given, but the Scorer was made with features=False")
        first = self._acc.n_samples
        try:
            self._acc.accumulate(predictions, labels, row_offset=0)
            if self.features:
                self._feature_acc.update(features, labels, first_row=first)
            self._spill.add(_native_block(predictions), np.asarray(labels))
        except BaseException:
            self.close()  # the state is unspecified after an error: free the spill
            raise
        return self

    def result(self) -> ScorerResult:
        """Pass 2 over the spill, then the scores. The spill is freed."""
        if self._done is not None:
            return self._done
        if self._spill is None:
            raise RuntimeError("result: the scorer is closed")
        try:
            self._acc.finalize()
            run_pass(lambda block: self._acc.step(2, block), self._spill, 2)
            result = self._acc.result()
            scores = {}
            if self.features:
                f = self._feature_acc
                scores = dict(
                    h_score=f.h_score(),
                    regularized_h_score=f.regularized_h_score(),
                    logme=f.logme(),
                )
            self._done = ScorerResult(result, **scores)
        finally:
            self.close()
        return self._done

    def close(self) -> None:
        """Free the spill (memory and file). Called by :meth:`result` and on errors."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        state = (
            "done"
            if self._done is not None
            else ("closed" if self._spill is None else "adding")
        )
        return (
            f"Scorer({state}, n_samples={self.n_samples}, features={self.features}, "
            f"backend={self._acc.backend!r})"
        )
