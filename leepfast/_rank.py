"""Rank several source models on one labelled target set: :func:`rank` and
:class:`Ranking`.

Every model is checked before any is scored (its files' headers and sizes, its row
count against the labels, its accuracy when accuracies are given, its logits flag), so a
bad last model fails in a second, not after the others were scored. Then each model is
scored with the public API (:func:`leepfast.score` for arrays, :func:`leepfast.score_files`
for files), and the rows are sorted by LEEP, best first.

With measured accuracies the ranking also carries the field's protocol (the one of
SFDA, ETran, Model Spider and "How stable are transferability metrics evaluations?"),
for LEEP and for NCE: Kendall tau-b, the weighted Kendall tau with hyperbolic weights
(equal to ``scipy.stats.weightedtau`` with its defaults), Pearson's r, whether the
top-scored model is the most accurate one (top-1 hit), and the regret, the accuracy lost
by taking the top-scored model instead of the most accurate one.

This module is a client of the public layer: it imports nothing from the command line,
and the command line (``leepfast rank``, ``leepfast demo``) and :func:`leepfast.demo`
call it.
"""

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

from ._api import check_predictions, score
from ._features import check_features
from ._files import score_files
from ._typing import LabelsLike, RowsLike
from .readers import Predictions, is_file_source, open_labels, open_predictions

#: The scores every ranking reports, in the order of its columns.
SCORES = ("leep", "nce")
#: The scores of features that rank(..., features=...) adds after them (the public
#: functions of these names), and those it adds by default.
FEATURE_SCORES = ("h_score", "regularized_h_score", "logme", "transrate", "gbc", "nleep")
DEFAULT_FEATURE_SCORES = ("h_score", "regularized_h_score", "logme")

_SCORE_NAMES = {
    "leep": "LEEP",
    "nce": "NCE",
    "h_score": "H-score",
    "regularized_h_score": "reg. H-score",
    "logme": "LogME",
    "transrate": "TransRate",
    "gbc": "GBC",
    "nleep": "N-LEEP",
}


# ---------------------------------------------------------------------------------------
# Correlations


def _floats(x, y, what):
    x = [float(v) for v in x]  # NumPy scalars and bools too
    y = [float(v) for v in y]
    if len(x) != len(y):
        raise ValueError(f"{what}: lengths differ ({len(x)} and {len(y)})")
    return x, y


def kendall_tau_b(x, y):
    """Kendall's tau-b rank correlation of two equal-length sequences (ties handled).

    tau_b = (concordant - discordant) / sqrt((n0 - n1) (n0 - n2)), n0 = n(n-1)/2, n1 and
    n2 the pairs tied in x and in y. NaN when either sequence is constant or n < 2.
    """
    x, y = _floats(x, y, "kendall_tau_b")
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            ties_x += dx == 0
            ties_y += dy == 0
            s = dx * dy
            concordant += s > 0
            discordant += s < 0
    n0 = n * (n - 1) // 2
    denom = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    return (concordant - discordant) / denom if denom > 0 else math.nan


def _weighted_tau_ranked(x, y):
    """Vigna's additive weighted tau with hyperbolic weights 1/(r + 1), r the rank of
    each element when sorted by decreasing (x, y) lexicographically (rank 0 first)."""
    n = len(x)
    order = sorted(range(n), key=lambda i: (x[i], y[i]), reverse=True)
    rank = np.empty(n)
    rank[order] = np.arange(n)
    w = 1.0 / (rank + 1.0)
    xa, ya = np.asarray(x), np.asarray(y)
    sx = np.sign(xa[:, None] - xa[None, :])
    sy = np.sign(ya[:, None] - ya[None, :])
    weight = np.triu(w[:, None] + w[None, :], k=1)  # each pair i < j once
    num = float(np.sum(weight * sx * sy))
    dx = float(np.sum(weight * (sx != 0)))
    dy = float(np.sum(weight * (sy != 0)))
    if dx == 0.0 or dy == 0.0:
        return math.nan
    return num / math.sqrt(dx * dy)


def weighted_tau(x, y):
    """Weighted Kendall tau with hyperbolic weights, as ``scipy.stats.weightedtau(x, y)``.

    The additive weighted tau of Vigna (2015): each pair (i, j) weighs w(r_i) + w(r_j)
    with w(r) = 1 / (r + 1) and r an element's rank (0 for the largest), so swaps among
    the top-scored elements cost more than swaps at the bottom; tau-b's normalisation
    for ties. As scipy with ``rank=True`` (its default), the mean of the values with the
    ranks of decreasing (x, y) and of decreasing (y, x). NaN when either sequence is
    constant or n < 2. Exact O(n^2) sums: for the handful of models a ranking holds.
    """
    x, y = _floats(x, y, "weighted_tau")
    if len(x) < 2:
        return math.nan
    return (_weighted_tau_ranked(x, y) + _weighted_tau_ranked(y, x)) / 2.0


def pearson(x, y):
    """Pearson's r of two equal-length sequences; NaN when either is constant or n < 2."""
    x, y = _floats(x, y, "pearson")
    if len(x) < 2:
        return math.nan
    xa, ya = np.asarray(x), np.asarray(y)
    xa, ya = xa - xa.mean(), ya - ya.mean()
    denom = math.sqrt(float(xa @ xa) * float(ya @ ya))
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(xa @ ya) / denom))


def _clean(value):
    """JSON-safe: NaN becomes None."""
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------------------------------
# The ranking


class Ranking:
    """Several source models scored on one labelled target set, best LEEP first.

    Made by :func:`rank`.

    Attributes
    ----------
    rows : list of dict
        One per model, sorted by LEEP (best first; ties keep the order given): ``model``,
        ``leep``, ``nce``, ``accuracy`` (when accuracies were given), ``n_samples``,
        ``n_source``, ``n_target``, ``logits``, ``files`` (the files read, None for an
        array) and ``seconds`` (time spent scoring it).
    n_samples, n_target : int
        Target samples and classes every model was scored on.
    scores : tuple of str
        The score columns: ``"leep"``, ``"nce"``, then the feature scores asked for.
    correlations : dict or None
        Without accuracies None. Else, for each score of ``scores``, a dict with
        ``kendall_tau_b``, ``weighted_tau`` (hyperbolic weights, equal to
        ``scipy.stats.weightedtau``), ``pearson`` (NaN where undefined: fewer than two
        models or a constant column), ``top1`` (the name of the top-scored model; ties:
        the first in ``rows``), ``top1_hit`` (True when it has the highest accuracy) and
        ``regret`` (highest accuracy minus the top-scored model's, >= 0; 0 on a hit).
    """

    def __init__(
        self,
        rows: list[dict],
        n_samples: int,
        n_target: int,
        has_accuracy: bool,
        scores: tuple[str, ...] = SCORES,
    ):
        self.rows = sorted(rows, key=lambda r: -r["leep"])  # stable: ties keep order
        self.n_samples = n_samples
        self.n_target = n_target
        self.has_accuracy = has_accuracy
        self.scores = tuple(scores)
        self.correlations = self._correlations() if has_accuracy else None

    def _correlations(self):
        acc = [r["accuracy"] for r in self.rows]
        best = max(acc)
        out = {}
        for key in self.scores:
            values = [r[key] for r in self.rows]
            top = max(range(len(values)), key=lambda i: (values[i], -i))
            out[key] = {
                "kendall_tau_b": kendall_tau_b(values, acc),
                "weighted_tau": weighted_tau(values, acc),
                "pearson": pearson(values, acc),
                "top1": self.rows[top]["model"],
                "top1_hit": acc[top] == best,
                "regret": best - acc[top],
            }
        return out

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        best = self.rows[0]
        return (
            f"Ranking({len(self.rows)} models, n_samples={self.n_samples}, "
            f"n_target={self.n_target}, best={best['model']!r} "
            f"(LEEP {best['leep']:.6g}))"
        )

    @property
    def names(self):
        """The model names, best LEEP first."""
        return [r["model"] for r in self.rows]

    def format(self, precision: int = 6) -> str:
        """The ranking as a text table (as ``leepfast rank`` prints it).

        One model a line (rank, model, LEEP, NCE, the feature scores asked for, and
        accuracy when given), then, with accuracies, one line per correlation of each
        score with them.
        """
        width = max(len("model"), *(len(r["model"]) for r in self.rows))
        cols = {k: max(precision + 4, len(_SCORE_NAMES[k])) for k in self.scores}
        head = f"{'rank':>4}  {'model':<{width}}" + "".join(
            f"  {_SCORE_NAMES[k]:>{cols[k]}}" for k in self.scores
        )
        lines = [head + ("  accuracy" if self.has_accuracy else "")]
        for i, r in enumerate(self.rows, start=1):
            line = f"{i:>4}  {r['model']:<{width}}" + "".join(
                f"  {r[k]:>{cols[k]}.{precision}f}" for k in self.scores
            )
            if self.has_accuracy:
                line += f"  {r['accuracy']:>8.4f}"
            lines.append(line)
        if self.correlations is None:
            return "\n".join(lines)
        c = self.correlations

        def both(stat):
            shown = []
            for key in self.scores:
                v = c[key][stat]
                shown.append(
                    f"{_SCORE_NAMES[key]} " + ("undefined" if math.isnan(v) else f"{v:.3f}")
                )
            return ", ".join(shown)

        lines += [
            "",
            f"Kendall tau-b with accuracy over {len(self.rows)} models: "
            f"{both('kendall_tau_b')}",
            f"weighted tau (hyperbolic, as scipy.stats.weightedtau): "
            f"{both('weighted_tau')}",
            f"Pearson r: {both('pearson')}",
        ]
        picks = []
        for key in self.scores:
            e = c[key]
            picks.append(
                f"{_SCORE_NAMES[key]} picks {e['top1']} "
                f"({'hit' if e['top1_hit'] else 'miss'}, regret {e['regret']:.4f})"
            )
        lines.append("top-1: " + "; ".join(picks))
        return "\n".join(lines)

    def to_records(self) -> list[dict]:
        """The rows as a list of new dicts (best LEEP first)."""
        return [
            dict(r, files=None if r["files"] is None else list(r["files"]))
            for r in self.rows
        ]

    def to_dict(self) -> dict:
        """Everything as plain Python values (NaN as None): ``models`` (the records),
        ``n_samples``, ``n_target``, and with accuracies ``correlations`` and
        ``kendall_tau_b`` ({score: tau-b})."""
        out = {
            "models": self.to_records(),
            "n_samples": self.n_samples,
            "n_target": self.n_target,
        }
        if self.correlations is not None:
            out["correlations"] = {
                key: {k: _clean(v) for k, v in e.items()}
                for key, e in self.correlations.items()
            }
            out["kendall_tau_b"] = {
                key: _clean(e["kendall_tau_b"]) for key, e in self.correlations.items()
            }
        return out

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string (keyword arguments go to ``json.dumps``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_pandas(self) -> "pandas.DataFrame":  # noqa: F821
        """The rows as a ``pandas.DataFrame`` indexed by model (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Ranking.to_pandas: needs pandas, which is not installed "
                "(pip install pandas); to_records() gives the same rows as dicts"
            ) from None
        return pd.DataFrame.from_records(self.to_records(), index="model")


# ---------------------------------------------------------------------------------------
# rank()


def _where_files(paths):
    if len(paths) == 1:
        return f"file {paths[0]}"
    return f"{len(paths)} files {paths[0]} ... {paths[-1]}"


def _logits_flags(logits, names):
    """{model: bool} from a bool or a mapping of model name -> bool."""
    if isinstance(logits, (bool, np.bool_)):
        return dict.fromkeys(names, bool(logits))
    if not isinstance(logits, Mapping):
        raise TypeError(
            f"logits: expected a bool or a mapping of model name -> bool, "
            f"got {type(logits).__name__}"
        )
    unknown = [k for k in logits if k not in names]
    if unknown:
        raise ValueError(
            f"logits: no model named {unknown[0]!r}; the models are "
            f"{', '.join(map(str, names))}"
        )
    flags = {}
    for name in names:
        value = logits.get(name, False)
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"logits[{name!r}]: expected a bool, got {type(value).__name__} {value!r}"
            )
        flags[name] = bool(value)
    return flags


def _feature_scores(features, feature_scores, names):
    """The feature scores to add (a tuple, empty without features), checked."""
    if features is None:
        if feature_scores is not None:
            raise TypeError("feature_scores: given without features; pass features=")
        return ()
    if not isinstance(features, Mapping):
        raise TypeError(
            f"features: expected a mapping of model name -> features (array or path), "
            f"got {type(features).__name__}"
        )
    missing = [n for n in names if n not in features]
    unknown = [n for n in features if n not in names]
    if missing or unknown:
        said = f"no features for {', '.join(map(repr, missing))}" if missing else ""
        said += "; " if missing and unknown else ""
        said += f"no model {', '.join(map(repr, unknown))}" if unknown else ""
        raise ValueError(
            f"features: expected the features of every model, one each; {said} "
            f"(the models are {', '.join(names)})"
        )
    chosen = DEFAULT_FEATURE_SCORES if feature_scores is None else feature_scores
    if isinstance(chosen, str) or not all(isinstance(s, str) for s in chosen):
        raise TypeError(
            f"feature_scores: expected a sequence of score names, got {chosen!r}"
        )
    chosen = tuple(chosen)
    bad = [s for s in chosen if s not in FEATURE_SCORES]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"feature_scores: expected distinct names among {', '.join(FEATURE_SCORES)}, "
            f"got {chosen!r}"
        )
    return chosen


def _check_features(features, names, n, label_where):
    """Every model's features opened (files: header and size) and their rows counted
    against the labels, before any model is scored."""
    for name in names:
        f, where = features[name], f"features[{name!r}]"
        if isinstance(f, Predictions):
            rows = f.n_samples
        elif is_file_source(f):  # errors name the file, as the feature scores' do
            opened = open_predictions(f, role="features")
            rows = opened.n_samples
            opened.close()
        else:
            rows = check_features(f, where).shape[0]
        if rows != n:
            raise ValueError(
                f"{where}: has {rows} rows of features; expected {n}, one per label "
                f"in {label_where}"
            )


def _public_score(name):
    """The public feature score of this name (imported when first asked for)."""
    import leepfast

    return getattr(leepfast, name)


def _accuracies(accuracy, names):
    if accuracy is None:
        return None
    if not isinstance(accuracy, Mapping):
        raise TypeError(
            f"accuracy: expected a mapping of model name -> accuracy, "
            f"got {type(accuracy).__name__}"
        )
    out = {}
    for name in names:
        if name not in accuracy:
            listed = ", ".join(sorted(map(str, accuracy))) or "nothing"
            raise ValueError(f"accuracy: no value for model {name!r}; it lists {listed}")
        value = accuracy[name]
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"accuracy[{name!r}]: expected a number, got {type(value).__name__}"
            )
        if not math.isfinite(float(value)):
            raise ValueError(f"accuracy[{name!r}]: expected a finite number, got {value}")
        out[name] = float(value)
    return out


class _ModelProgress:
    """One line per model on stderr (its name, position and result) when enabled."""

    def __init__(self, enabled, total):
        if enabled is None:
            enabled = sys.stderr is not None and sys.stderr.isatty()
        self.enabled, self.total = bool(enabled), total

    def start(self, i, name):
        if self.enabled:
            print(
                f"leepfast rank: model {i}/{self.total} {name} ...",
                file=sys.stderr,
                flush=True,
            )

    def done(self, i, name, leep, seconds):
        if self.enabled:
            print(
                f"leepfast rank: model {i}/{self.total} {name}: LEEP {leep:.6f} "
                f"({seconds:.2f} s)",
                file=sys.stderr,
                flush=True,
            )


def rank(
    models: Mapping[str, RowsLike],
    labels: LabelsLike,
    *,
    accuracy: Mapping[str, float] | None = None,
    n_target: int | None = None,
    logits: bool | Mapping[str, bool] = False,
    dtype: str | None = None,
    n_source: int | None = None,
    key: str | None = None,
    backend: str = "auto",
    n_threads: int | None = None,
    block_size: int | None = None,
    progress: bool | None = None,
    features: Mapping[str, RowsLike] | None = None,
    feature_scores: Sequence[str] | None = None,
) -> Ranking:
    """Score several source models on one labelled target set and rank them by LEEP.

    Every model is checked before any is scored: file headers and sizes, row counts
    against the labels, an accuracy per model when ``accuracy`` is given, the logits
    flags. Then each model's LEEP and NCE come from :func:`leepfast.score` (arrays) or
    :func:`leepfast.score_files` (files), with the same labels and the same n_target.

    Parameters
    ----------
    models : mapping of str -> array or file(s)
        Model name -> its predictions on the target samples (the argument order is
        source predictions, then target labels, as everywhere in leepfast): an array
        or a host tensor of shape (n_samples, n_source), float16, float32, float64 or
        (tensors) bfloat16; or a path, a directory, a glob or a list of shards (see
        :func:`leepfast.open_predictions`), or an opened ``Predictions``. At least one
        model.
    labels : path or array of shape (n_samples,), any integer dtype
        The target labels, shared by every model (see :func:`leepfast.open_labels`).
    accuracy : mapping of str -> float, optional
        Each model's measured accuracy after transfer (extra names are ignored). Adds
        the column and the correlations of LEEP and NCE with it.
    n_target : int, optional
        Y; default largest label + 1.
    logits : bool or mapping of str -> bool, default False
        Whether the predictions are logits (a softmax is taken per row): for every
        model, or per model name (names not listed: False).
    dtype, n_source : optional
        Raw (non-.npy) files: see :func:`leepfast.open_predictions`.
    key : str, optional
        ``.npz`` and ``.safetensors`` files holding several arrays: the one to read.
    backend, n_threads, block_size :
        As in :func:`leepfast.score`.
    progress : bool, optional
        One line per model on stderr (its name, then its LEEP and time) and the
        progress bar of :func:`leepfast.score_files`; default: only when stderr is a
        terminal.
    features : mapping of str -> array or file(s), optional
        Model name -> its features (e.g. penultimate activations) on the same target
        samples, for every model: an array or host tensor of shape (n_samples, D), or
        a file of one array (as the feature scores take them). Adds the columns of
        ``feature_scores``, each ranked against the accuracies too.
    feature_scores : sequence of str, optional
        With ``features``: which of ``FEATURE_SCORES`` ("h_score",
        "regularized_h_score", "logme", "transrate", "gbc", "nleep"; each the public
        function of that name with its defaults) to add; default ``("h_score",
        "regularized_h_score", "logme")``, the one-pass ones.

    Returns
    -------
    Ranking
        ``rows`` best LEEP first; ``correlations`` with the accuracies when given;
        ``format()``, ``to_json()``, ``to_records()``, ``to_pandas()``.

    Raises
    ------
    TypeError, ValueError, FileNotFoundError, FileFormatError
        Bad arguments or files, each naming the model (``models['name']``) and, for
        files, the file.
    """
    if not isinstance(models, Mapping):
        raise TypeError(
            f"models: expected a mapping of model name -> predictions (array or "
            f"path), got {type(models).__name__}"
        )
    if not models:
        raise ValueError("models: expected at least one model, got none")
    names = list(models)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"models: expected str names, got {type(name).__name__} {name!r}"
            )
    flags = _logits_flags(logits, names)
    acc = _accuracies(accuracy, names)
    extra = _feature_scores(features, feature_scores, names)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress: expected None or a bool, got {type(progress).__name__}")
    opened_labels = open_labels(labels)
    n = opened_labels.n_samples
    y_classes = opened_labels.check_range(n_target)
    label_where = (
        "labels" if opened_labels.path is None else (f"labels (file {opened_labels.path})")
    )
    array_labels = None

    # every model checked before any is scored
    plan = []
    for name in names:
        model = models[name]
        if is_file_source(model):
            if isinstance(model, Predictions):
                files, rows = [f.path for f in model.files], model.n_samples
            else:
                # errors name the file (and the kind of fault) as score_files's do
                preds = open_predictions(model, dtype=dtype, n_source=n_source, key=key)
                files, rows = [f.path for f in preds.files], preds.n_samples
                preds.close()
            where = f"models[{name!r}] ({_where_files(files)})"
        else:
            # tensors through DLPack, as score takes them (bfloat16 widened, marked)
            arr = check_predictions(model, f"models[{name!r}]")
            files, rows, model = None, arr.shape[0], arr
            where = f"models[{name!r}]"
        if rows != n:
            raise ValueError(
                f"{where}: has {rows} rows of predictions; expected {n}, one per "
                f"label in {label_where}"
            )
        plan.append((name, model, files))
    if extra:
        _check_features(features, names, n, label_where)

    report = _ModelProgress(progress, len(plan))
    kwargs = dict(
        n_target=y_classes, backend=backend, n_threads=n_threads, block_size=block_size
    )
    rows = []
    for i, (name, model, files) in enumerate(plan, start=1):
        report.start(i, name)
        t0 = time.perf_counter()
        if files is None:
            if array_labels is None:
                array_labels = opened_labels.array()
            r = score(model, array_labels, logits=flags[name], **kwargs)
        else:
            r = score_files(
                model,
                opened_labels,
                logits=flags[name],
                dtype=dtype,
                n_source=n_source,
                key=key,
                progress=progress,
                **kwargs,
            )
        row = {"model": name, "leep": r.leep, "nce": r.nce}
        if extra:
            if array_labels is None:
                array_labels = opened_labels.array()
            for s in extra:
                row[s] = float(_public_score(s)(features[name], array_labels))
        seconds = time.perf_counter() - t0
        report.done(i, name, r.leep, seconds)
        if acc is not None:
            row["accuracy"] = acc[name]
        row.update(
            n_samples=r.n_samples,
            n_source=r.n_source,
            n_target=r.n_target,
            logits=flags[name],
            files=files,
            seconds=seconds,
        )
        rows.append(row)
    return Ranking(rows, n, y_classes, acc is not None, SCORES + extra)
