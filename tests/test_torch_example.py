"""examples/torch/rank_models.py in its quick mode: real torch models, one forward pass
each, a Scorer fed tensors, rank() over the zoo.

Skipped where torch is absent, except when LEEPFAST_REQUIRE_TORCH is set (the ``torch``
fixture, conftest): CI installs torch==2.13.0 and fails without it.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import leepfast

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch" / "rank_models.py"
BLAS_VAR = "OPENBLAS_NUM_THREADS"  # the example sets it when it is imported


@pytest.fixture(scope="module")
def example(torch):
    before = os.environ.get(BLAS_VAR)
    spec = importlib.util.spec_from_file_location("leepfast_torch_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:  # keep this process's environment as it was for the other tests
        if before is None:
            os.environ.pop(BLAS_VAR, None)
        else:
            os.environ[BLAS_VAR] = before
    return module


@pytest.fixture(scope="module")
def quick(example, torch):
    """The quick run in this process, with the example's default of one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield example.run("quick", seed=0, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def printed(torch, tmp_path_factory):
    """The quick run as a user runs it: its stdout and its JSON."""
    out = tmp_path_factory.mktemp("torch-example")
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--json", str(out / "run.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=out,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout, json.loads((out / "run.json").read_text())


def _ranking_table(stdout):
    """(model, LEEP, NCE, accuracy) of the lines of Ranking.format()'s table."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^rank\s+model\s", line))
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rank, model, leep, nce, acc = line.split()
        assert int(rank) == len(rows) + 1
        rows.append((model, float(leep), float(nce), float(acc)))
    return rows


def test_the_printed_ranking_is_sorted_by_leep_and_holds_this_runs_values(
    printed, quick, example
):
    stdout, doc = printed
    table = _ranking_table(stdout)
    assert [m for m, *_ in table] == quick["ranking"].names
    assert sorted(m for m, *_ in table) == sorted(example.ZOO)
    leeps = [leep for _, leep, _, _ in table]
    assert leeps == sorted(leeps, reverse=True)
    # the same seeded pipeline in this process prints the same numbers
    for model, leep, nce, acc in table:
        s = quick["scores"][model]
        assert leep == round(s.leep, 6) and nce == round(s.nce, 6)
        assert acc == round(quick["accuracy"][model], 4)
        assert -np.log(example.N_TARGET) - 0.01 < s.leep < 0
    for model, values in doc["scores"].items():
        s = quick["scores"][model]
        assert values["leep"] == pytest.approx(s.leep, rel=1e-12)
        assert values["nce"] == pytest.approx(s.nce, rel=1e-12)
        for name in ("h_score", "regularized_h_score", "logme"):
            assert values[name] == pytest.approx(getattr(s, name), rel=1e-9, abs=1e-12)
    assert doc["accuracy"] == quick["accuracy"]
    ours = quick["ranking"].to_dict()["correlations"]
    for score, stats in doc["ranking"]["correlations"].items():
        for stat, value in stats.items():
            if isinstance(value, float):
                assert value == pytest.approx(ours[score][stat], rel=1e-12), (score, stat)
            else:  # top1 (a name), top1_hit
                assert value == ours[score][stat], (score, stat)
    assert "Kendall tau-b with accuracy over 7 models: LEEP " in stdout
    assert "weighted tau (hyperbolic, as scipy.stats.weightedtau): LEEP " in stdout


def test_the_streamed_scores_equal_the_one_shot_scores_of_the_same_outputs(
    quick, example, torch
):
    target_x, target_y = quick["target"]
    ranking_leep = {r["model"]: r["leep"] for r in quick["ranking"].rows}
    for name, (probs, feats, labels) in quick["outputs"].items():
        spec = example.ZOO[name]
        kind = torch.bfloat16 if spec["bfloat16"] else torch.float32
        assert probs.dtype == feats.dtype == kind
        assert probs.shape == (len(target_y), example.N_SOURCE)
        assert feats.shape == (len(target_y), spec["widths"][-1])
        assert torch.equal(labels, target_y)
        s = quick["scores"][name]
        want = leepfast.score(probs, labels)  # the concatenated batches, in one call
        assert s.leep == pytest.approx(want.leep, rel=1e-12)
        assert s.nce == pytest.approx(want.nce, rel=1e-12)
        assert ranking_leep[name] == pytest.approx(want.leep, rel=1e-12)
        assert s.result.n_samples == len(target_y)
        f = feats.float().numpy().astype(np.float64)
        y = labels.numpy()
        # batches of 256 rows against one block: the same sums in another order, through
        # the inverse of an ill-conditioned covariance (ReLU features): 1e-10 held on an
        # AVX-512 CPU, 8.8e-10 was measured on an AVX2 one (OpenBLAS's Haswell kernels),
        # with this session's feature, scorer and option changes each reverted too
        assert s.h_score == pytest.approx(leepfast.h_score(f, y), rel=1e-8)
        assert s.regularized_h_score == pytest.approx(
            leepfast.regularized_h_score(f, y), rel=1e-8
        )
        assert s.logme == pytest.approx(leepfast.logme(f, y), rel=1e-8)
        if not spec["bfloat16"]:  # the hook saw the penultimate layer, the rows the softmax
            model = quick["models"][name]
            with torch.inference_mode():
                torch.testing.assert_close(feats, model.body(target_x), rtol=1e-6, atol=0)
                torch.testing.assert_close(
                    probs, model(target_x).softmax(-1), rtol=1e-5, atol=1e-7
                )
    # the zoo differs: the untrained model scores lowest and transfers worse than the best
    scores = quick["scores"]
    assert min(scores, key=lambda m: scores[m].leep) == "mlp-64x2-untrained"
    acc = quick["accuracy"]
    assert acc["mlp-64x2-untrained"] < max(acc.values()) - 0.05
