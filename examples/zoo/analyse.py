"""Target tasks, transfer accuracy, the eight scores and their correlations, from a cache.

    python examples/zoo/analyse.py [--cache DIR] [--out DIR]

Reads what forward.py cached (no torch needed: NumPy, scikit-learn, SciPy, matplotlib
and leepfast only) and writes ``pairs.csv`` (one row per source and task),
``per_source.csv`` (a), ``per_task.csv`` (b), ``summary.md`` and ``plot.png``.

Every setting is fixed here, before any correlation is computed (SETTINGS below); the
smoke test runs the same code on a small committed cache with smaller settings.
"""

import argparse
import csv
import hashlib
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, pearsonr, weightedtau

import leepfast

HERE = Path(__file__).resolve().parent

# Fixed before the first correlation was computed; not tuned after.
SETTINGS = {
    "class_counts": [2, 4, 6, 8, 10],  # k: target classes drawn at random per task
    "train_per_class": [5, 25],  # training images per class (scores and the new head)
    "repeats": 2,  # tasks per (target set, k, training size)
    "seed": 0,
    "head_C": 1.0,  # the new head: L2 logistic regression on standardised features
}
SCORES = [
    "leep",
    "nce",
    "h_score",
    "reg_h_score",
    "logme",
    "nleep",
    "transrate",
    "gbc",
]
LABELS = {
    "leep": "LEEP",
    "nce": "NCE",
    "h_score": "H-score",
    "reg_h_score": "regularized H-score",
    "logme": "LogME",
    "nleep": "N-LEEP",
    "transrate": "TransRate",
    "gbc": "GBC",
    "neg_log_k": "-log(k) baseline",
}
# source subsets for the per-task rankings (stratified by Z)
SOURCE_SETS = {
    "all sources": lambda m: True,
    "Z = 10 only": lambda m: m["z"] == 10,
    "Z > 4 only": lambda m: m["z"] > 4,
}
# target subsets (stratified by whether some sources saw the target's domain)
TARGET_SETS = {
    "all targets": lambda d: True,
    "digit targets (digit sources saw the domain)": lambda d: d == "handwritten digits",
    "other targets (no source saw the domain)": lambda d: d != "handwritten digits",
}


def load_cache(cache, only=None):
    """meta, {target: labels}, {(target, source): (logits, features)}, the sources
    (``only``: just these)."""
    cache = Path(cache)
    meta_file = cache / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"--cache: expected {meta_file} written by forward.py, not found"
        )
    meta = json.loads(meta_file.read_text())
    unknown = sorted(set(only or ()) - set(meta["sources"]))
    if unknown:
        raise ValueError(
            f"--only: expected names from {list(meta['sources'])}, found {unknown}"
        )
    labels, outputs = {}, {}
    for t in meta["targets"]:
        if not (cache / t / "labels.npy").is_file():
            continue
        labels[t] = np.load(cache / t / "labels.npy")
        for s in only or meta["sources"]:
            f = cache / t / f"{s}.npz"
            if f.is_file():
                with np.load(f) as z:
                    outputs[t, s] = (z["logits"], z["features"])
    sources = sorted({s for _, s in outputs}, key=list(meta["sources"]).index)
    for t in labels:
        missing = [s for s in sources if (t, s) not in outputs]
        if missing:
            raise FileNotFoundError(
                f"--cache: expected every source's outputs for target {t!r}; "
                f"missing {missing} (run forward.py again)"
            )
    return meta, labels, outputs, sources


def draw_tasks(labels, settings):
    """The task list: (target, k, n_train, repeat, classes, train index, test index)."""
    rng = np.random.default_rng(settings["seed"])
    tasks = []
    for t, y in labels.items():
        classes_all = np.unique(y)
        for k in settings["class_counts"]:
            for n_train in settings["train_per_class"]:
                for r in range(settings["repeats"]):
                    classes = np.sort(rng.choice(classes_all, size=k, replace=False))
                    train, test = [], []
                    for c in classes:
                        idx = rng.permutation(np.flatnonzero(y == c))
                        if len(idx) <= n_train:
                            raise ValueError(
                                f"target {t!r}: expected more than {n_train} images of "
                                f"class {c} in the cache, found {len(idx)} (forward.py "
                                "--per-class)"
                            )
                        train.append(idx[:n_train])
                        test.append(idx[n_train:])
                    tasks.append(
                        dict(
                            target=t,
                            k=k,
                            n_train=n_train,
                            repeat=r,
                            classes=classes,
                            train=np.concatenate(train),
                            test=np.concatenate(test),
                        )
                    )
    return tasks


def _task_labels(y_all, classes):
    """Labels 0..k-1 for the task's classes, -1 for the images of other classes."""
    remap = {c: j for j, c in enumerate(classes)}
    return np.array([remap.get(c, -1) for c in y_all])


def head_accuracy(features, y, train, test, C):
    """Test accuracy of a new logistic-regression head on frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features[train])
    head = LogisticRegression(C=C, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few fits stop at max_iter; accuracy is kept
        head.fit(scaler.transform(features[train]), y[train])
    return float(head.score(scaler.transform(features[test]), y[test]))


def score_source(meta, labels, outputs, s, tasks, settings):
    """One row per task for source ``s``: the eight scores and the head's accuracy."""
    rows = []
    for i, task in enumerate(tasks):
        y_all = labels[task["target"]]
        y = _task_labels(y_all, task["classes"])
        train, test = task["train"], task["test"]
        y_train = y[train]
        domain = meta["targets"][task["target"]]
        logits, feats = outputs[task["target"], s]
        f = feats.astype(np.float32)
        f_train = f[train]
        theta = logits[train]
        rows.append(
            dict(
                task=i,
                target=task["target"],
                target_domain=domain,
                k=task["k"],
                n_train=task["n_train"],
                repeat=task["repeat"],
                source=s,
                z=meta["sources"][s]["z"],
                source_saw_domain=bool(
                    meta["sources"][s]["digits"] and domain == "handwritten digits"
                ),
                accuracy=head_accuracy(f, y, train, test, settings["head_C"]),
                leep=leepfast.leep(theta, y_train, n_target=task["k"], logits=True),
                nce=leepfast.nce(theta, y_train, n_target=task["k"], logits=True),
                h_score=leepfast.h_score(f_train, y_train),
                reg_h_score=leepfast.regularized_h_score(f_train, y_train),
                logme=leepfast.logme(f_train, y_train),
                # the library's defaults (the public code's); at most one mixture
                # component per training image (the smoke cache has 3 per class)
                nleep=leepfast.nleep(
                    f_train, y_train, components_per_class=min(5, task["n_train"])
                ),
                transrate=leepfast.transrate(f_train, y_train),
                gbc=leepfast.gbc(f_train, y_train),
                neg_log_k=-math.log(task["k"]),
            )
        )
    return rows


def _pairs_file(cache, meta, s, settings):
    """Where one source's rows are kept: named by a hash of the settings and of the
    cached outputs they come from, so a changed setting or forward pass recomputes."""
    key = hashlib.sha256(json.dumps([settings, SCORES], sort_keys=True).encode())
    for t in meta["targets"]:
        f = Path(cache) / t / f"{s}.npz"
        if f.is_file():
            key.update(f"{t}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return Path(cache) / "pairs" / f"{s}-{key.hexdigest()[:16]}.json"


def score_pairs(cache, meta, labels, outputs, sources, tasks, settings, keep=True):
    """One row per (task, source), in task order. With ``keep``, each source's rows are
    kept under ``cache/pairs/`` and read back by a later run with the same settings."""
    from threadpoolctl import threadpool_limits

    by_source = {}
    for s in sources:
        path = _pairs_file(cache, meta, s, settings)
        if keep and path.is_file():
            by_source[s] = json.loads(path.read_text())
            continue
        # one BLAS thread: the matrices are small (D <= 1280) and two BLAS threads on
        # a shared 2-core machine spend most of their time waiting for each other
        with threadpool_limits(1):
            by_source[s] = score_source(meta, labels, outputs, s, tasks, settings)
        if keep:
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(by_source[s]))
    return [by_source[s][i] for i in range(len(tasks)) for s in sources]


def _by(rows, key):
    out = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def per_source(rows, sources):
    """(a) per source: correlation of each score with accuracy across all tasks."""
    table = []
    for s, group in _by(rows, "source").items():
        acc = np.array([r["accuracy"] for r in group])
        for key in [*SCORES, "neg_log_k"]:
            v = np.array([r[key] for r in group])
            table.append(
                dict(
                    source=s,
                    z=group[0]["z"],
                    score=key,
                    n_tasks=len(group),
                    pearson=float(pearsonr(v, acc).statistic),
                    kendall_tau_b=float(kendalltau(v, acc).statistic),
                    mean_accuracy=float(acc.mean()),
                )
            )
    table.sort(key=lambda r: (sources.index(r["source"]), r["score"]))
    return table


def rank_task(group, key):
    """Rank the sources of one task by ``key``: the model-selection statistics.

    Sources tied at the top score (NCE ties often on small tasks) share the pick: top-1
    hit and regret are their means, the expected outcome of breaking the tie at random.
    """
    acc = np.array([r["accuracy"] for r in group])
    v = np.array([r[key] for r in group])
    top = v == v.max()
    saw = np.array([r["source_saw_domain"] for r in group])
    return dict(
        weighted_tau=float(weightedtau(v, acc).statistic),
        kendall_tau_b=float(kendalltau(v, acc).statistic),
        top1_hit=float(np.mean(acc[top] == acc.max())),
        regret=float(np.mean(acc.max() - acc[top])),
        tied_top=int(top.sum()),
        top1_saw_domain=float(np.mean(saw[top])),
    )


def check_against_rank(group, task, outputs, y):
    """leepfast.rank on the task's softmax rows gives the LEEP, NCE and ranking
    statistics computed here (one code path for the library's own ranking)."""
    train = task["train"]
    ranking = leepfast.rank(
        {r["source"]: outputs[task["target"], r["source"]][0][train] for r in group},
        y[train],
        accuracy={r["source"]: r["accuracy"] for r in group},
        n_target=task["k"],
        logits=True,
        progress=False,
    )
    mine = {r["source"]: r for r in group}
    for row in ranking.rows:
        for key in ("leep", "nce"):
            if row[key] != mine[row["model"]][key]:
                raise AssertionError(
                    f"{key} of {row['model']}: rank {row[key]}, here "
                    f"{mine[row['model']][key]}"
                )
    for key in ("leep", "nce"):
        here = rank_task(group, key)
        theirs = ranking.correlations[key]
        # rank breaks a tie at the top by its own order; compare regret without ties
        names = ("weighted_tau", "kendall_tau_b", "regret")
        for name in names if here["tied_top"] == 1 else names[:2]:
            a, b = here[name], theirs[name]
            if not (
                math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                or (math.isnan(a) and math.isnan(b))
            ):
                raise AssertionError(f"{key} {name}: here {a}, leepfast.rank {b}")


def per_task(rows, meta):
    """(b) per task: rank correlation across sources, stratified."""
    tasks = _by(rows, "task")
    table = []
    for tname, tkeep in TARGET_SETS.items():
        for sname, skeep in SOURCE_SETS.items():
            stats = {key: [] for key in SCORES}
            n_sources = None
            for group in tasks.values():
                if not tkeep(group[0]["target_domain"]):
                    continue
                sub = [r for r in group if skeep(meta["sources"][r["source"]])]
                if len(sub) < 3:
                    continue
                n_sources = len(sub)
                for key in SCORES:
                    stats[key].append(rank_task(sub, key))
                accs = np.array([r["accuracy"] for r in sub])
                saw = np.array([r["source_saw_domain"] for r in sub])
                stats.setdefault("random pick", []).append(
                    dict(
                        weighted_tau=0.0,
                        kendall_tau_b=0.0,
                        top1_hit=float(np.mean(accs == accs.max())),
                        regret=float(accs.max() - accs.mean()),
                        top1_saw_domain=float(saw.mean()),
                    )
                )
            if not stats["leep"]:
                continue
            for key, values in stats.items():
                table.append(
                    dict(
                        targets=tname,
                        sources=sname,
                        n_sources=n_sources,
                        n_tasks=len(values),
                        score=key,
                        weighted_tau=_nanmean([v["weighted_tau"] for v in values]),
                        kendall_tau_b=_nanmean([v["kendall_tau_b"] for v in values]),
                        top1_hit=float(np.mean([v["top1_hit"] for v in values])),
                        regret=float(np.mean([v["regret"] for v in values])),
                        top1_saw_domain=float(
                            np.mean([v["top1_saw_domain"] for v in values])
                        ),
                    )
                )
    return table


def _nanmean(values):
    values = np.array(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else math.nan


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
            )


def _fmt(v, signed=True):
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def markdown(src_table, task_table, meta, sources, n_tasks, settings):
    lines = [
        "# LEEP on packaged pretrained models (examples/zoo)",
        "",
        f"{len(sources)} sources, {n_tasks} target tasks; "
        f"settings: `{json.dumps(settings)}`.",
        "",
        "## (a) Per source: correlation of each score with head accuracy across tasks",
        "",
        "Pearson r / Kendall tau-b over the tasks of every target set.",
        "",
        "| source | Z | mean accuracy | "
        + " | ".join(LABELS[k] for k in [*SCORES, "neg_log_k"])
        + " |",
        "|---|---|---|" + "---|" * (len(SCORES) + 1),
    ]
    by_source = _by(src_table, "source")
    for s in sources:
        cells = {r["score"]: r for r in by_source[s]}
        lines.append(
            f"| {s} | {meta['sources'][s]['z']} | {cells['leep']['mean_accuracy']:.3f} | "
            + " | ".join(
                f"{_fmt(cells[k]['pearson'])} / {_fmt(cells[k]['kendall_tau_b'])}"
                for k in [*SCORES, "neg_log_k"]
            )
            + " |"
        )
    lines += [
        "",
        "## (b) Per task: ranking the sources (mean over tasks)",
        "",
        "Weighted Kendall tau (hyperbolic weights), Kendall tau-b, top-1 hit rate, "
        "regret (accuracy points lost by taking the top-scored source instead of the "
        "best); seen domain: how often the top-scored source is one that saw the "
        "target's domain.",
        "",
    ]
    for (tname, sname), group in _group_pairs(task_table).items():
        lines += [
            f"### {tname}, {sname} ({group[0]['n_sources']} sources, "
            f"{group[0]['n_tasks']} tasks)",
            "",
            "| score | weighted tau | Kendall tau-b | top-1 hit | regret | seen domain |",
            "|---|---|---|---|---|---|",
        ]
        for r in group:
            name = LABELS.get(r["score"], r["score"])
            if r["score"] == "random pick":
                wt = kt = "0 (expected)"
            else:
                wt, kt = _fmt(r["weighted_tau"]), _fmt(r["kendall_tau_b"])
            lines.append(
                f"| {name} | {wt} | {kt} | {r['top1_hit']:.2f} | {100 * r['regret']:.1f} "
                f"| {r['top1_saw_domain']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _group_pairs(task_table):
    out = {}
    for r in task_table:
        out.setdefault((r["targets"], r["sources"]), []).append(r)
    return out


def plot(rows, task_table, sources, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    for s in sources:
        pts = [r for r in rows if r["source"] == s]
        ax.scatter(
            [r["leep"] for r in pts], [r["accuracy"] for r in pts], s=10, label=s, alpha=0.7
        )
    ax.set_xlabel("LEEP (target training images)")
    ax.set_ylabel("accuracy of a new head on frozen features")
    ax.set_title("every (source, task) pair")
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[1]
    groups = [
        (t, s)
        for (t, s) in _group_pairs(task_table)
        if s in ("all sources", "Z = 10 only") and t != "all targets"
    ]
    width = 0.8 / len(SCORES)
    for j, key in enumerate(SCORES):
        vals = []
        for g in groups:
            hit = [
                r
                for r in task_table
                if (r["targets"], r["sources"]) == g and r["score"] == key
            ]
            vals.append(hit[0]["weighted_tau"] if hit else math.nan)
        ax.bar(np.arange(len(groups)) + j * width, vals, width, label=LABELS[key])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{t.split(' (')[0]}\n{s}" for t, s in groups], fontsize=8)
    ax.set_ylabel("mean per-task weighted Kendall tau")
    ax.set_title("ranking the sources of one task")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(cache, out, settings=None, only=None, keep=True):
    """The whole analysis; ``only``: score these sources and stop (their rows are kept
    for the next run), e.g. to score a source whose forward pass has just finished."""
    settings = dict(SETTINGS if settings is None else settings)
    start = time.perf_counter()
    meta, labels, outputs, sources = load_cache(cache, only)
    tasks = draw_tasks(labels, settings)
    if only:
        score_pairs(cache, meta, labels, outputs, only, tasks, settings)
        return dict(seconds=time.perf_counter() - start)
    rows = score_pairs(cache, meta, labels, outputs, sources, tasks, settings, keep)
    src_table = per_source(rows, sources)
    for i, group in _by(rows, "task").items():
        y = _task_labels(labels[tasks[i]["target"]], tasks[i]["classes"])
        check_against_rank(group, tasks[i], outputs, y)
    task_table = per_task(rows, meta)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "pairs.csv", rows)
    write_csv(out / "per_source.csv", src_table)
    write_csv(out / "per_task.csv", task_table)
    (out / "summary.md").write_text(
        markdown(src_table, task_table, meta, sources, len(tasks), settings) + "\n"
    )
    plot(rows, task_table, sources, out / "plot.png")
    return dict(
        rows=rows,
        per_source=src_table,
        per_task=task_table,
        seconds=time.perf_counter() - start,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument(
        "--only", default="", help="comma-separated sources: score them, write nothing"
    )
    args = p.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    result = run(args.cache, args.out, only=only)
    if only:
        print(f"scored {only} in {result['seconds']:.1f} s")
    else:
        print(f"{len(result['rows'])} pairs in {result['seconds']:.1f} s; wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
