"""leepfast's scores against the public code they follow, on the same seeded inputs.

Run it yourself: this script never downloads anything. Point it at local checkouts of
the public repositories (any directory holding their files) with ``--public NAME=DIR``,
optionally ``NAME=DIR@COMMIT`` to name the commit in the table (else ``git rev-parse``
in DIR, else "?"). The public functions are imported from those files with importlib
and run unchanged; NAME is one of

    LogME   thuml/LogME                      LogME.py (LogME, regression=False and
                                             True), LEEP.py, NCE.py
    tllib   thuml/Transfer-Learning-Library  tllib/ranking/transrate.py, hscore.py
    SFDA    TencentARC/SFDA                  metrics.py (NLEEP)
    msnlp   Ba1Jun/model-selection-nlp       project/src/methods/gbc.py (GBC, a NumPy
                                             port of google-research's TF gbc.py)

    python benchmarks/public_scores.py --public LogME=/tmp/pub/LogME \\
        --public tllib=/tmp/pub/tllib --public SFDA=/tmp/pub/SFDA \\
        --public msnlp=/tmp/pub/msnlp

It prints a Markdown table: per score, the largest relative difference over all the
seeded cases (several n, D, Y, some with absent classes; for LogME of a target matrix
several n, D, k, regression targets and their 0/1 indicators), and the median time of
leepfast and of the public function on the timing case, measured round-robin.

Where the public code's convention differs the harness says so in the case notes:
labels are compacted to 0..K-1 for public code that cannot take an absent class
(TransRate divides by a class count of zero, SFDA's N-LEEP indexes classes by
position), and the absent-class rows of LogME show the authors' convention (their mean
includes an absent class's all-zero column) beside leepfast's (classes present only).

N-LEEP fits a Gaussian mixture (k-means initialisation, random). Both sides get the same
seed: leepfast ``random_state=np.random.RandomState(s)``, SFDA's NLEEP (which passes no
random_state, so scikit-learn draws from NumPy's global generator) after
``np.random.seed(s)``; the harness records the posteriors each fit returns (by wrapping
``GaussianMixture.predict_proba``, nothing in the public code is changed) and compares
them, then leepfast's N-LEEP with thuml/LogME's LEEP.py applied to the public
posteriors. SFDA returns the mean EEP without the log, so its value itself is a
different number; it is shown, not compared.
"""

import argparse
import contextlib
import functools
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

import leepfast
from leepfast import _bench

FILES = {
    "LogME": ["LogME.py", "LEEP.py", "NCE.py"],
    "tllib": ["tllib/ranking/transrate.py", "tllib/ranking/hscore.py"],
    "SFDA": ["metrics.py"],
    "msnlp": ["project/src/methods/gbc.py"],
}
REPOS = {
    "LogME": "thuml/LogME",
    "tllib": "thuml/Transfer-Learning-Library",
    "SFDA": "TencentARC/SFDA",
    "msnlp": "Ba1Jun/model-selection-nlp",
}


# ---------------------------------------------------------------------------------------
# Loading the public code from local files


def _commit(directory, given):
    if given:
        return given[:12]
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()[:12]
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _load(path, name):
    """Import one public file as a module of its own, its directory first on sys.path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(Path(path).parent))
    return module


@contextlib.contextmanager
def _stub_module(name, **attributes):
    """A placeholder module for an import the functions we call never use (SFDA's
    metrics.py imports utils.iterative_A, which needs its model zoo, for SFDA_Score)."""
    saved = sys.modules.get(name)
    sys.modules[name] = types.SimpleNamespace(**attributes)
    try:
        yield
    finally:
        if saved is None:
            del sys.modules[name]
        else:
            sys.modules[name] = saved


def load_public(specs):
    public = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        directory, _, commit = rest.partition("@")
        if name not in FILES:
            raise SystemExit(
                f"--public {spec}: expected NAME=DIR with NAME in {list(FILES)}"
            )
        directory = Path(directory)
        modules = {}
        for rel in FILES[name]:
            path = directory / rel
            if not path.is_file():
                raise SystemExit(f"--public {spec}: {path} not found")
            key = f"_public_{name}_{Path(rel).stem}"
            if name == "SFDA":
                with _stub_module("utils", iterative_A=None):
                    modules[Path(rel).stem] = _load(path, key)
            else:
                modules[Path(rel).stem] = _load(path, key)
        public[name] = (modules, f"{REPOS[name]}@{_commit(directory, commit)}")
    return public


# ---------------------------------------------------------------------------------------
# Seeded inputs


def features_case(seed, n, d, y, absent=()):
    """Class-dependent Gaussian features; classes in ``absent`` get no sample."""
    rng = np.random.default_rng(seed)
    classes = np.array([c for c in range(y) if c not in absent])
    labels = classes[rng.integers(0, len(classes), n)]
    labels[: len(classes)] = classes  # every listed class present
    means = rng.normal(scale=1.5, size=(y, d))
    scales = rng.uniform(0.5, 2.0, size=(y, 1))
    f = means[labels] + scales[labels] * rng.standard_normal((n, d))
    return f, labels


def targets_case(seed, n, d, k, multilabel=False):
    """Gaussian features and k regression targets linear in them plus noise (some
    columns far from zero mean); ``multilabel``: their 0/1 indicators above the
    column's 70th percentile, as float64."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d)) + rng.normal(scale=0.5, size=d)
    w = rng.normal(size=(d, k)) * rng.uniform(0.05, 1.0, size=k)
    y = f @ w + rng.normal(size=(n, k)) * rng.uniform(0.3, 3.0, size=k)
    y += rng.normal(scale=2.0, size=k)
    if multilabel:
        y = (y > np.quantile(y, 0.7, axis=0)).astype(np.float64)
    return f, y


def describe_features(case):
    return f"n={case[1]} D={case[2]} Y={case[3]} absent={list(case[4])}"


def describe_targets(case):
    return f"n={case[1]} D={case[2]} k={case[3]}"


def compact(labels):
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def predictions_case(seed, n, z, y, absent=()):
    f, labels = features_case(seed, n, 8, y, absent)
    rng = np.random.default_rng(seed + 1)
    logits = f @ rng.normal(size=(8, z))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), labels


# ---------------------------------------------------------------------------------------
# The comparisons


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def timed(pairs, rounds):
    """Median seconds of each callable, calls interleaved round-robin
    (:func:`leepfast._bench.median_times`), in the order given."""
    m = _bench.median_times(dict(enumerate(pairs)), rounds)
    return [m[i] for i in range(len(pairs))]


CASES = [  # (seed, n, D, Y, absent classes)
    (1, 300, 8, 3, ()),
    (2, 1000, 32, 10, ()),
    (3, 2000, 64, 10, (4,)),
    (4, 5000, 16, 50, (0, 17)),
    (6, 120, 200, 4, ()),  # D > n: LogME's thin SVD, H-score saturated
]
TIMING = (5, 50_000, 256, 50, ())  # the size of the README's earlier measurement
TARGET_CASES = [  # (seed, n, D, k): regression targets, then their 0/1 indicators
    (1, 300, 8, 1),
    (2, 1000, 32, 5),
    (3, 2000, 64, 10),
    (4, 5000, 16, 3),
    (6, 120, 200, 4),  # D > n: the thin SVD
]
TARGET_TIMING = (5, 50_000, 256, 10)
NLEEP_CASES = [(1, 400, 16, 3, ()), (2, 1500, 32, 5, ()), (3, 1500, 32, 6, (2,))]
NLEEP_TIMING = (5, 2000, 32, 5, ())  # both sides: >99% scikit-learn's GMM fit


def compare_features(
    name,
    repo,
    ours,
    theirs,
    cases,
    timing,
    rounds,
    note="",
    make=features_case,
    describe=describe_features,
):
    """ours(f, y) and theirs(f, y) -> float on every case (inputs ``make(*case)``); the
    max relative difference."""
    worst, detail = 0.0, []
    for case in cases:
        f, y = make(*case)
        a, b = ours(f, y), theirs(f, y)
        worst = max(worst, rel(a, b))
        detail.append(f"{describe(case)}: leepfast {a:.12g}, public {b:.12g}")
    f, y = make(*timing)
    t_ours, t_theirs = timed([lambda: ours(f, y), lambda: theirs(f, y)], rounds)
    size = describe(timing).split(" absent=")[0]
    return _row(name, repo, worst, size, (t_ours, t_theirs), note, detail)


def _row(score, repo, diff, size, times, note="", detail=()):
    """One row of the table: the largest relative difference, the timing case and the
    two median times (leepfast, public)."""
    ours, theirs = times
    return dict(
        score=score,
        repo=repo,
        diff=diff,
        size=size,
        ours=ours,
        theirs=theirs,
        note=note,
        detail=list(detail),
    )


def run(public, rounds, quick):
    rows = []
    cases = CASES[:2] if quick else CASES
    timing = (5, 5000, 64, 10, ()) if quick else TIMING
    compare = functools.partial(compare_features, cases=cases, timing=timing, rounds=rounds)

    if "LogME" in public:
        mods, repo = public["LogME"]

        def logme_public(f, y):
            return float(mods["LogME"].LogME(regression=False).fit(f, y))

        rows.append(
            compare(
                "LogME",
                repo,
                lambda f, y: leepfast.logme(f, y),
                lambda f, y: logme_public(f, compact(y)),
                note="public on compacted labels (absent classes removed)",
            )
        )
        # a target matrix: the authors' regression=True, every column averaged
        tcases = TARGET_CASES[:2] if quick else TARGET_CASES
        ttiming = (5, 5000, 64, 5) if quick else TARGET_TIMING
        for multilabel, what in ((False, "regression"), (True, "multi-label 0/1")):
            rows.append(
                compare(
                    f"LogME, {what} targets",
                    repo,
                    lambda f, y: leepfast.logme(f, y),
                    lambda f, y: float(mods["LogME"].LogME(regression=True).fit(f, y)),
                    cases=[(*case, multilabel) for case in tcases],
                    timing=(*ttiming, multilabel),
                    note="a (n, k) float64 target matrix; public LogME(regression=True)",
                    make=targets_case,
                    describe=describe_targets,
                )
            )
        # the authors' convention on absent classes, labels as given
        detail = []
        for case in cases:
            if not case[4]:
                continue
            f, y = features_case(*case)
            detail.append(
                f"n={case[1]} D={case[2]} Y={case[3]} absent={list(case[4])}: "
                f"leepfast {leepfast.logme(f, y):.6g}, public on labels as "
                f"given {logme_public(f, y):.6g}"
            )
        rows.append(
            dict(
                score="LogME, absent class, labels as given",
                repo=repo,
                diff=None,
                note="the authors average in the absent class's all-zero target column",
                detail=detail,
            )
        )

        pcases = [(s, n, 20, y, a) for s, n, _, y, a in cases]
        worst_leep, worst_nce, detail = 0.0, 0.0, []
        for case in pcases:
            p, y = predictions_case(*case)
            a, b = leepfast.leep(p, y), float(mods["LEEP"].LEEP(p, y))
            c, d = leepfast.nce(p, y), float(mods["NCE"].NCE(np.argmax(p, axis=1), y))
            worst_leep, worst_nce = max(worst_leep, rel(a, b)), max(worst_nce, rel(c, d))
            detail.append(
                f"n={case[1]} Z=20 Y={case[3]}: LEEP {a:.12g} / {b:.12g}, "
                f"NCE {c:.12g} / {d:.12g}"
            )
        p, y = predictions_case(timing[0], timing[1], 1000, timing[3])
        t = timed([lambda: leepfast.leep(p, y), lambda: mods["LEEP"].LEEP(p, y)], rounds)
        size = f"n={timing[1]} Z=1000 Y={timing[3]}"
        rows.append(_row("LEEP", repo, worst_leep, size, t, detail=detail))
        t = timed(
            [
                lambda: leepfast.nce(p, y),
                lambda: mods["NCE"].NCE(np.argmax(p, axis=1), y),
            ],
            rounds,
        )
        note = "public given the argmax labels (the argmax timed with it)"
        rows.append(_row("NCE", repo, worst_nce, size, t, note=note))

    if "tllib" in public:
        mods, repo = public["tllib"]
        tr = mods["transrate"].transrate
        rows.append(
            compare(
                "TransRate",
                repo,
                lambda f, y: leepfast.transrate(f, y),
                lambda f, y: float(tr(f, compact(y))),
                note="public on compacted labels (an absent class divides by zero there)",
            )
        )
        for name, fn in (
            ("H-score", "h_score"),
            ("regularized H-score", "regularized_h_score"),
        ):
            ours, theirs = getattr(leepfast, fn), getattr(mods["hscore"], fn)
            rows.append(compare(name, repo, ours, lambda f, y, g=theirs: float(g(f, y))))

    if "msnlp" in public:
        mods, repo = public["msnlp"]
        for kind in ("spherical", "diagonal"):
            rows.append(
                compare(
                    f"GBC ({kind})",
                    repo,
                    lambda f, y, k=kind: leepfast.gbc(f, y, gaussian=k),
                    lambda f, y, k=kind: float(mods["gbc"].GBC(None).score(f, y, k)),
                )
            )
        if not quick:
            from sklearn.decomposition import PCA

            rows.append(
                compare(
                    "GBC (spherical, pca=32)",
                    repo,
                    lambda f, y: leepfast.gbc(f, y, pca=32),
                    lambda f, y: float(
                        mods["gbc"]
                        .GBC(None)
                        .score(
                            PCA(n_components=32, svd_solver="full").fit_transform(f),
                            y,
                            "spherical",
                        )
                    ),
                    cases=[c for c in cases if c[2] > 32],
                    note="public given scikit-learn's PCA(32) of the features",
                )
            )

    if "SFDA" in public and "LogME" in public:
        rows.extend(run_nleep(public, rounds, quick))
    return rows


@contextlib.contextmanager
def _recording():
    """Record every posterior GaussianMixture.predict_proba returns (no change to it)."""
    from sklearn import mixture

    seen = []
    original = mixture.GaussianMixture.predict_proba

    def predict_proba(self, x):
        p = original(self, x)
        seen.append(p)
        return p

    mixture.GaussianMixture.predict_proba = predict_proba
    try:
        yield seen
    finally:
        mixture.GaussianMixture.predict_proba = original


def run_nleep(public, rounds, quick):
    sfda, repo = public["SFDA"]
    leep_py = public["LogME"][0]["LEEP"].LEEP
    nleep_public = sfda["metrics"].NLEEP

    def ours(f, y, seed):
        return leepfast.nleep(f, y, random_state=np.random.RandomState(seed))

    def theirs(f, y, seed):
        np.random.seed(seed)  # noqa: NPY002 - the public code draws from the global one
        return float(nleep_public(f, compact(y)))

    post, value, kernel, detail = 0.0, 0.0, 0.0, []
    for case in NLEEP_CASES[:2] if quick else NLEEP_CASES:
        f, y = features_case(*case)
        with _recording() as seen:
            a = ours(f, y, case[0])
            b = theirs(f, y, case[0])
        p_ours, p_pub = seen
        c = float(leep_py(p_pub, compact(y)))  # the public LEEP (with the log) of them
        post = max(post, float(np.max(np.abs(p_ours - p_pub))))
        value = max(value, rel(a, c))
        kernel = max(kernel, rel(leepfast.leep(p_pub, y), c))
        detail.append(
            f"n={case[1]} D={case[2]} Y={case[3]} absent={list(case[4])}: "
            f"leepfast {a:.12g}, LEEP.py of SFDA's posteriors {c:.12g}, "
            f"SFDA NLEEP (mean EEP, no log) {b:.12g}"
        )
    f, y = features_case(*NLEEP_TIMING)
    t = timed([lambda: ours(f, y, 0), lambda: theirs(f, y, 0)], max(1, rounds // 2))
    size = f"n={NLEEP_TIMING[1]} D={NLEEP_TIMING[2]} Y={NLEEP_TIMING[3]}"
    return [
        dict(
            score="N-LEEP",
            repo=repo,
            diff=value,
            size=size,
            ours=t[0],
            theirs=t[1],
            note="vs thuml/LogME LEEP.py of SFDA's GMM posteriors, same seed; "
            f"posteriors differ by {post:.1e} at most (absolute)",
            detail=detail,
        ),
        dict(
            score="LEEP of the same posteriors",
            repo=public["LogME"][1],
            diff=kernel,
            note="leepfast.leep vs LEEP.py on SFDA's posteriors",
            detail=[],
        ),
    ]


def markdown(rows):
    out = [
        "| score | public code | max rel. diff | timing case | leepfast | public | "
        "speedup |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = "convention" if r["diff"] is None else f"{r['diff']:.1e}"
        if "ours" in r:
            t = (
                f"{r['size']} | {r['ours'] * 1e3:.3g} ms | {r['theirs'] * 1e3:.3g} ms | "
                f"{r['theirs'] / r['ours']:.2g}x"
            )
        else:
            t = "| | |"
        out.append(f"| {r['score']} | {r['repo']} | {diff} | {t} |")
    out.append("")
    for r in rows:
        if r["note"] or r["detail"]:
            out.append(f"- {r['score']}: {r['note']}")
            out.extend(f"  - {d}" for d in r["detail"])
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--public",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a local checkout of public code (repeat); NAME=DIR@COMMIT",
    )
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (median)")
    parser.add_argument("--quick", action="store_true", help="small cases only")
    args = parser.parse_args(argv)
    if not args.public:
        parser.error("give at least one --public NAME=DIR")
    public = load_public(args.public)
    print(markdown(run(public, args.rounds, args.quick)))


if __name__ == "__main__":
    main()
