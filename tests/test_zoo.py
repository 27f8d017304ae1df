"""Smoke run of examples/zoo/analyse.py on the small cache committed beside it.

The cache (examples/zoo/smoke/, written by make_smoke.py from a full forward run) holds
the real outputs of the eight packaged models on 60 sklearn-digits and 60 Fashion-MNIST
images; no model is run here, so only the test extra is needed.
"""

import csv
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, pearsonr

ZOO = Path(__file__).resolve().parents[1] / "examples" / "zoo"
SMOKE = ZOO / "smoke"
SETTINGS = {
    "class_counts": [2, 5, 10],
    "train_per_class": [3],
    "repeats": 2,
    "seed": 0,
    "head_C": 1.0,
}
SOURCES = [
    "mnist-cnn",
    "usps-cnn",
    "svhn-cnn",
    "mnist-cnn-2",
    "efficientnet-lite0",
    "open-nsfw",
    "mri-tumor-vgg16",
    "fer-emotions",
]


@pytest.fixture(scope="module")
def A():
    spec = importlib.util.spec_from_file_location(
        "leepfast_zoo_analyse", ZOO / "analyse.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(A, tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    return A.run(SMOKE, out, SETTINGS, keep=False), out


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _leep_oracle(logits, y):
    """LEEP from its definition, in float64, from the cached logits."""
    x = logits.astype(np.float64)
    theta = np.exp(x - x.max(1, keepdims=True))
    theta /= theta.sum(1, keepdims=True)
    k = y.max() + 1
    joint = np.stack([theta[y == c].sum(0) for c in range(k)]) / len(y)
    cond = np.divide(joint, joint.sum(0), out=np.zeros_like(joint), where=joint.sum(0) > 0)
    return float(np.mean(np.log(np.sum(theta * cond[y], axis=1))))


def test_smoke_cache_is_small_and_complete():
    files = [f for f in SMOKE.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 400 * 1024
    for t in ("sklearn-digits", "fashion-mnist"):
        y = np.load(SMOKE / t / "labels.npy")
        assert np.array_equal(np.bincount(y), np.full(10, 6))
        for s in SOURCES:
            with np.load(SMOKE / t / f"{s}.npz") as z:
                assert z["logits"].shape[0] == z["features"].shape[0] == 60
                assert np.isfinite(z["logits"]).all()


def test_every_pair_is_scored_and_leep_is_the_definition(A, run):
    result, out = run
    rows = result["rows"]
    n_tasks = 2 * 3 * 1 * 2  # targets x class counts x training sizes x repeats
    assert len(rows) == n_tasks * len(SOURCES) == len(_read(out / "pairs.csv"))
    meta, labels, outputs, _ = A.load_cache(SMOKE)
    tasks = A.draw_tasks(labels, SETTINGS)
    assert [t["k"] for t in tasks] == [2, 2, 5, 5, 10, 10] * 2
    for r in rows:
        task = tasks[r["task"]]
        y = A._task_labels(labels[task["target"]], task["classes"])[task["train"]]
        assert len(y) == 3 * task["k"] and set(np.unique(y)) == set(range(task["k"]))
        logits = outputs[task["target"], r["source"]][0][task["train"]]
        assert r["leep"] == pytest.approx(_leep_oracle(logits, y), abs=1e-9)
        assert r["leep"] <= 0 and r["nce"] <= 0
        assert 0 <= r["accuracy"] <= 1
        assert r["source_saw_domain"] == (
            r["target"] == "sklearn-digits" and meta["sources"][r["source"]]["digits"]
        )


def test_feature_scores_beside_leep_are_the_reference_formulas(A, run):
    """TransRate and GBC of every pair against the NumPy reference on the same training
    features; N-LEEP is a LEEP (a mean log-likelihood): finite and <= 0."""
    from leepfast import _reference

    rows = run[0]["rows"]
    _, labels, outputs, _ = A.load_cache(SMOKE)
    tasks = A.draw_tasks(labels, SETTINGS)
    for r in rows:
        task = tasks[r["task"]]
        y = A._task_labels(labels[task["target"]], task["classes"])[task["train"]]
        f = outputs[task["target"], r["source"]][1].astype(np.float32)[task["train"]]
        assert r["transrate"] == pytest.approx(_reference.transrate(f, y), rel=1e-7)
        assert r["gbc"] == pytest.approx(_reference.gbc(f, y), rel=1e-7, abs=1e-300)
        assert math.isfinite(r["nleep"]) and r["nleep"] <= 0


def test_real_models_behave_as_their_training_says(run):
    """Real values, not just shapes: an MNIST CNN outscores the NSFW detector on digits
    by LEEP, and a new head on its features (16 principal components here, 3 training
    images per class) is far above chance on 10 digit classes."""
    rows = run[0]["rows"]
    digits = [r for r in rows if r["target"] == "sklearn-digits"]
    by = {(r["task"], r["source"]): r for r in digits}
    for task in {r["task"] for r in digits}:
        mnist, nsfw = by[task, "mnist-cnn"], by[task, "open-nsfw"]
        assert mnist["leep"] > nsfw["leep"]
        if mnist["k"] == 10:
            assert mnist["accuracy"] > 3 * 0.1
    # a source with Z=2 cannot tell 10 classes apart through its softmax: its LEEP sits
    # at log(1/10) (the labels are balanced), where the digit CNNs are far above it
    ten = [r for r in digits if r["k"] == 10]
    for r in ten:
        if r["source"] == "open-nsfw":
            assert abs(r["leep"] - math.log(0.1)) < 0.05
        if r["source"] in ("mnist-cnn", "usps-cnn", "svhn-cnn", "mnist-cnn-2"):
            assert r["leep"] > math.log(0.1) + 1.0


def test_per_source_correlations_are_those_of_the_pairs(run):
    result, out = run
    rows = result["rows"]
    table = _read(out / "per_source.csv")
    assert len(table) == len(SOURCES) * 9  # eight scores and the -log(k) baseline
    for entry in result["per_source"]:
        pts = [r for r in rows if r["source"] == entry["source"]]
        v = [r[entry["score"]] for r in pts]
        acc = [r["accuracy"] for r in pts]
        assert entry["n_tasks"] == len(pts) == 12
        assert entry["pearson"] == pytest.approx(pearsonr(v, acc).statistic, abs=1e-12)
        assert entry["kendall_tau_b"] == pytest.approx(
            kendalltau(v, acc).statistic, abs=1e-12
        )


def test_per_task_rankings_and_strata(run):
    result, out = run
    rows = result["rows"]
    table = result["per_task"]
    assert len(_read(out / "per_task.csv")) == len(table)
    strata = {(r["targets"], r["sources"]): r for r in table if r["score"] == "leep"}
    assert strata["all targets", "all sources"]["n_sources"] == 8
    assert strata["all targets", "Z = 10 only"]["n_sources"] == 4
    assert strata["all targets", "Z > 4 only"]["n_sources"] == 6
    for (targets, _), r in strata.items():
        assert r["n_tasks"] == (12 if targets == "all targets" else 6)
    for r in table:
        assert 0 <= r["top1_hit"] <= 1 and 0 <= r["regret"] <= 1
        for key in ("weighted_tau", "kendall_tau_b"):
            assert math.isnan(r[key]) or -1 <= r[key] <= 1
    # the random-pick line is the mean over tasks of (best - mean accuracy)
    tasks = {}
    for r in rows:
        tasks.setdefault(r["task"], []).append(r["accuracy"])
    expected = np.mean([max(a) - np.mean(a) for a in tasks.values()])
    rand = [
        r
        for r in table
        if r["score"] == "random pick"
        and (r["targets"], r["sources"]) == ("all targets", "all sources")
    ]
    assert rand[0]["regret"] == pytest.approx(expected, abs=1e-12)


def test_outputs_written(run):
    _, out = run
    summary = (out / "summary.md").read_text()
    assert "## (a) Per source" in summary and "## (b) Per task" in summary
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_cache_is_one_clear_error(A, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--cache: expected .*meta\.json"):
        A.load_cache(tmp_path)
