"""leepfast.rank(): several models on one label set, and the field's correlation
protocol."""

import json
import math

import numpy as np
import pytest
from scipy import stats

import leepfast
from leepfast import _rank

rank, Ranking = _rank.rank, _rank.Ranking


# ---------------------------------------------------------------------------------------
# The correlations against scipy and by hand


def _random_case(rng, n, ties):
    if ties:  # few distinct values: ties in x, in y and in both
        return rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)
    return rng.normal(size=n), rng.normal(size=n)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_tau_equals_scipy_weightedtau_on_random_cases(ties):
    rng = np.random.default_rng(7)
    checked = 0
    for n in [2, 3, 4, 5, 8, 13, 30, 64]:
        for _ in range(40):
            x, y = _random_case(rng, n, ties)
            ref = stats.weightedtau(x, y).statistic
            got = _rank.weighted_tau(x, y)
            if math.isnan(ref):
                assert math.isnan(got)
                continue
            assert got == pytest.approx(ref, rel=1e-12, abs=1e-14), (x, y)
            checked += 1
    assert checked > 250


def test_weighted_tau_hand_computed():
    # x and y in the same order: 1; reversed: -1
    assert _rank.weighted_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert _rank.weighted_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # n = 3, x = (3, 2, 1), y = (1, 3, 2): ranks by x give weights w = (1, 1/2, 1/3);
    # pairs (0,1) discordant, weight 3/2; (0,2) discordant, 4/3; (1,2) concordant, 5/6
    # -> (5/6 - 3/2 - 4/3) / (3/2 + 4/3 + 5/6) = -2 / (11/3) = -6/11.
    # ranks by y: element 1 first, then 2, then 0: w = (1/3, 1, 1/2); weights
    # (0,1) 4/3 disc, (0,2) 5/6 disc, (1,2) 3/2 conc -> (3/2 - 4/3 - 5/6) / (11/3) = -2/11
    expected = (-6 / 11 + -2 / 11) / 2
    assert _rank.weighted_tau([3, 2, 1], [1, 3, 2]) == pytest.approx(expected, abs=1e-15)
    assert stats.weightedtau([3, 2, 1], [1, 3, 2]).statistic == pytest.approx(expected)
    assert math.isnan(_rank.weighted_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(_rank.weighted_tau([1], [2]))


@pytest.mark.parametrize("ties", [False, True])
def test_kendall_tau_b_and_pearson_equal_scipy(ties):
    rng = np.random.default_rng(11)
    for n in [2, 3, 7, 20]:
        for _ in range(20):
            x, y = _random_case(rng, n, ties)
            ref = stats.kendalltau(x, y).statistic
            got = _rank.kendall_tau_b(x, y)
            assert (math.isnan(ref) and math.isnan(got)) or got == pytest.approx(
                ref, rel=1e-12, abs=1e-15
            )
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                ref = stats.pearsonr(x, y).statistic
                assert _rank.pearson(x, y) == pytest.approx(ref, rel=1e-12, abs=1e-15)
            else:
                assert math.isnan(_rank.pearson(x, y))


# ---------------------------------------------------------------------------------------
# rank() on arrays, files, directories and globs


@pytest.fixture
def zoo(tmp_path, rng, make_models):
    """Four models of decreasing quality: an array, a file, a directory, a glob."""
    weights = [("a", 0.9), ("b", 0.6), ("c", 0.3), ("d", 0.05)]
    y, dumps = make_models(rng, 1500, 12, 4, weights)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "b.npy", dumps["b"].astype(np.float32))
    dumps["b"] = dumps["b"].astype(np.float32)
    (tmp_path / "c").mkdir()
    np.save(tmp_path / "c" / "part-0.npy", dumps["c"][:700])
    np.save(tmp_path / "c" / "part-1.npy", dumps["c"][700:])
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "x0.npy", dumps["d"][:1000])
    np.save(tmp_path / "d" / "x1.npy", dumps["d"][1000:])
    models = {
        "d": str(tmp_path / "d" / "x*.npy"),
        "b": tmp_path / "b.npy",
        "a": dumps["a"],
        "c": str(tmp_path / "c"),
    }
    return tmp_path, models, dumps, y


def test_rank_rows_best_first_with_the_public_scores(zoo):
    tmp, models, dumps, y = zoo
    r = rank(models, tmp / "y.npy")
    assert isinstance(r, Ranking)
    assert r.names == ["a", "b", "c", "d"]
    assert (r.n_samples, r.n_target, r.correlations) == (1500, 4, None)
    for row in r.rows:
        ref = leepfast.score(dumps[row["model"]], y)
        np.testing.assert_allclose(row["leep"], ref.leep, rtol=1e-12)
        np.testing.assert_allclose(row["nce"], ref.nce, rtol=1e-12)
        assert (row["n_samples"], row["n_source"], row["n_target"]) == (1500, 12, 4)
        assert row["logits"] is False and "accuracy" not in row
    assert r.rows[0]["files"] is None  # the array
    assert [p[-6:] for p in r.rows[2]["files"]] == ["-0.npy", "-1.npy"]
    # labels as an array give the same
    again = rank(models, y)
    assert [row["leep"] for row in again.rows] == [row["leep"] for row in r.rows]
    text = r.format().splitlines()
    assert text[0].split() == ["rank", "model", "LEEP", "NCE"]
    assert [line.split()[1] for line in text[1:]] == ["a", "b", "c", "d"]


def test_rank_with_accuracy_gives_the_protocol(zoo):
    tmp, models, _, y = zoo
    # LEEP order a > b > c > d; accuracies: b best, then a, d, c
    accuracy = {"a": 0.80, "b": 0.85, "c": 0.40, "d": 0.50, "unused": 0.1}
    r = rank(models, tmp / "y.npy", accuracy=accuracy)
    assert [row["accuracy"] for row in r.rows] == [0.80, 0.85, 0.40, 0.50]
    leeps = [row["leep"] for row in r.rows]
    acc = [0.80, 0.85, 0.40, 0.50]
    c = r.correlations["leep"]
    assert c["kendall_tau_b"] == pytest.approx(stats.kendalltau(leeps, acc).statistic)
    assert c["kendall_tau_b"] == pytest.approx((4 - 2) / 6)  # 4 concordant, 2 discordant
    assert c["weighted_tau"] == pytest.approx(stats.weightedtau(leeps, acc).statistic)
    assert c["pearson"] == pytest.approx(stats.pearsonr(leeps, acc).statistic)
    assert c["top1"] == "a" and c["top1_hit"] is False
    assert c["regret"] == pytest.approx(0.05)
    nces = [row["nce"] for row in r.rows]
    top = r.rows[int(np.argmax(nces))]
    assert r.correlations["nce"]["top1"] == top["model"]
    assert r.correlations["nce"]["regret"] == pytest.approx(0.85 - top["accuracy"])
    # outputs
    out = json.loads(r.to_json())
    assert [m["model"] for m in out["models"]] == ["a", "b", "c", "d"]
    assert out["kendall_tau_b"]["leep"] == pytest.approx(1 / 3)
    assert out["correlations"]["leep"]["top1_hit"] is False
    records = r.to_records()
    records[0]["leep"] = 99.0
    assert r.rows[0]["leep"] != 99.0  # new dicts
    text = r.format()
    assert "Kendall tau-b with accuracy over 4 models: LEEP 0.333" in text
    assert "weighted tau (hyperbolic, as scipy.stats.weightedtau): LEEP " in text
    assert "top-1: LEEP picks a (miss, regret 0.0500)" in text
    pd = pytest.importorskip("pandas")
    df = r.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.index) == ["a", "b", "c", "d"]
    assert df.loc["b", "accuracy"] == 0.85


def test_rank_top1_hit_and_undefined_correlations():
    rng = np.random.default_rng(3)
    theta = rng.dirichlet(np.ones(5), 200)
    y = rng.integers(0, 3, 200)
    r = rank({"one": theta}, y, accuracy={"one": 0.7})
    c = r.correlations["leep"]
    assert c["top1_hit"] is True and c["regret"] == 0.0
    assert math.isnan(c["kendall_tau_b"]) and math.isnan(c["weighted_tau"])
    assert math.isnan(c["pearson"])
    assert json.loads(r.to_json())["correlations"]["leep"]["pearson"] is None
    assert "LEEP undefined" in r.format()


def test_rank_per_model_logits(rng, make_theta):
    n = 800
    y = rng.integers(0, 3, n)
    probs = make_theta(rng, n, 6)
    logits = rng.normal(size=(n, 6)) * 3
    r = rank({"p": probs, "l": logits}, y, logits={"l": True})
    rows = {row["model"]: row for row in r.rows}
    assert rows["l"]["logits"] is True and rows["p"]["logits"] is False
    np.testing.assert_allclose(
        rows["l"]["leep"], leepfast.leep(logits, y, logits=True), rtol=1e-12
    )
    np.testing.assert_allclose(rows["p"]["leep"], leepfast.leep(probs, y), rtol=1e-12)
    with pytest.raises(
        ValueError,
        match=r"^logits: no model named 'x'; the models are "
        r"p, l$",
    ):
        rank({"p": probs, "l": logits}, y, logits={"x": True})
    with pytest.raises(TypeError, match=r"^logits\['l'\]: expected a bool, got str"):
        rank({"p": probs, "l": logits}, y, logits={"l": "True"})
    with pytest.raises(TypeError, match="^logits: expected a bool or a mapping"):
        rank({"p": probs}, y, logits="False")


def test_rank_checks_every_model_before_scoring_any(zoo, monkeypatch):
    """13.18: a bad last model fails before any model is scored."""
    tmp, models, dumps, y = zoo
    calls = []
    monkeypatch.setattr(_rank, "score", lambda *a, **k: calls.append(a) or 1 / 0)
    monkeypatch.setattr(_rank, "score_files", lambda *a, **k: calls.append(a) or 1 / 0)
    bad = dict(models, z=str(tmp / "missing.npy"))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        rank(bad, tmp / "y.npy")
    np.save(tmp / "short.npy", dumps["a"][:-1])
    bad = dict(models, z=tmp / "short.npy")
    with pytest.raises(ValueError) as err:
        rank(bad, tmp / "y.npy")
    assert str(err.value) == (
        f"models['z'] (file {tmp / 'short.npy'}): has 1499 rows of predictions; "
        f"expected 1500, one per label in labels (file {tmp / 'y.npy'})"
    )
    with pytest.raises(
        ValueError,
        match=r"^models\['a'\]: has 1499 rows of predictions; "
        r"expected 1500, one per label in labels$",
    ):
        rank({"a": dumps["a"][:-1]}, y)
    with pytest.raises(
        ValueError,
        match=r"^accuracy: no value for model 'd'; it lists "
        r"a, b, c$",
    ):
        rank(models, y, accuracy={"a": 0.1, "b": 0.2, "c": 0.3})
    with pytest.raises(ValueError, match=r"^accuracy\['a'\]: expected a finite number"):
        rank(models, y, accuracy={"a": math.nan, "b": 0.2, "c": 0.3, "d": 0.1})
    with pytest.raises(
        ValueError,
        match=r"labels: row \d+ is \d+; expected an integer in "
        r"\[0, 1\)",
    ):
        rank(models, y, n_target=1)
    assert calls == []


def test_rank_argument_errors(rng):
    theta = rng.dirichlet(np.ones(3), 10)
    y = rng.integers(0, 2, 10)
    with pytest.raises(TypeError, match="^models: expected a mapping of model name"):
        rank([theta], y)
    with pytest.raises(ValueError, match="^models: expected at least one model, got none"):
        rank({}, y)
    with pytest.raises(TypeError, match="^models: expected str names, got int 3"):
        rank({3: theta}, y)
    with pytest.raises(ValueError, match=r"^models\['m'\]: expected a 2-D array"):
        rank({"m": theta[0]}, y)
    with pytest.raises(TypeError, match="^accuracy: expected a mapping"):
        rank({"m": theta}, y, accuracy=[0.5])
    with pytest.raises(TypeError, match=r"^accuracy\['m'\]: expected a number, got str"):
        rank({"m": theta}, y, accuracy={"m": "0.5"})


def test_rank_progress_names_each_model(rng, capsys):
    theta = rng.dirichlet(np.ones(3), 50)
    y = rng.integers(0, 2, 50)
    rank({"first": theta, "second": theta}, y, progress=True)
    err = capsys.readouterr().err
    assert "leepfast rank: model 1/2 first ..." in err
    assert "leepfast rank: model 2/2 second: LEEP " in err
    rank({"first": theta}, y, progress=False)
    assert capsys.readouterr().err == ""


def test_no_module_imports_the_command_line(python_c):
    code = (
        "import sys, leepfast\n"
        "leepfast.demo()\n"
        "from leepfast import _rank, _demo, _features, _files, _api, readers\n"
        "assert 'leepfast.cli' not in sys.modules, 'leepfast.cli imported'\n"
    )
    p = python_c(code)
    assert p.returncode == 0, p.stderr


def test_demo_is_a_ranking():
    d = leepfast.demo()
    assert isinstance(d.ranking, Ranking)
    assert [r["model"] for r in d.rows] == d.ranking.names
    assert d.kendall_leep == d.ranking.correlations["leep"]["kendall_tau_b"]
    assert "weighted tau" in d.format()


# ---------------------------------------------------------------------------------------
# rank() with features: the feature scores beside LEEP


def test_rank_with_features_adds_each_feature_score(tmp_path, rng, make_models):
    y, dumps = make_models(rng, 800, 12, 4, [("a", 0.8), ("b", 0.4), ("c", 0.05)])
    feats = {
        name: rng.normal(size=(800, 6)) + 3 * w * np.eye(6)[y]
        for name, w in [("a", 0.8), ("b", 0.4), ("c", 0.05)]
    }
    np.save(tmp_path / "c_features.npy", feats["c"])
    given = dict(feats, c=tmp_path / "c_features.npy")  # a file among arrays
    accuracy = {"a": 0.9, "b": 0.6, "c": 0.7}
    chosen = ("logme", "transrate", "gbc", "h_score", "regularized_h_score")
    r = leepfast.rank(dumps, y, features=given, feature_scores=chosen, accuracy=accuracy)
    assert r.scores == ("leep", "nce", *chosen)
    for row in r.rows:
        for s in chosen:
            assert row[s] == getattr(leepfast, s)(feats[row["model"]], y), s
        assert row["leep"] == pytest.approx(
            leepfast.leep(dumps[row["model"]], y), rel=1e-12
        )
    from scipy import stats

    for s in chosen:
        values = [row[s] for row in r.rows]
        acc = [row["accuracy"] for row in r.rows]
        c = r.correlations[s]
        assert c["kendall_tau_b"] == pytest.approx(stats.kendalltau(values, acc).statistic)
        assert c["weighted_tau"] == pytest.approx(stats.weightedtau(values, acc).statistic)
    text = r.format()
    assert text.splitlines()[0].split() == [
        "rank", "model", "LEEP", "NCE", "LogME", "TransRate", "GBC", "H-score",
        "reg.", "H-score", "accuracy",
    ]  # fmt: skip
    assert "TransRate picks" in text and "GBC " in text
    # default: the one-pass scores; without features: LEEP and NCE only, as before
    assert leepfast.rank(dumps, y, features=feats).scores == (
        "leep", "nce", "h_score", "regularized_h_score", "logme",
    )  # fmt: skip
    plain = leepfast.rank(dumps, y)
    assert plain.scores == ("leep", "nce") and "logme" not in plain.rows[0]


def test_rank_features_are_checked_before_any_model_is_scored(tmp_path, rng, make_models):
    y, dumps = make_models(rng, 300, 8, 4, [("a", 0.8), ("b", 0.4)])
    feats = {"a": rng.normal(size=(300, 5)), "b": rng.normal(size=(299, 5))}
    with pytest.raises(ValueError) as err:
        leepfast.rank(dumps, y, features=feats)
    assert str(err.value) == (
        "features['b']: has 299 rows of features; expected 300, one per label in labels"
    )
    with pytest.raises(ValueError) as err:
        leepfast.rank(dumps, y, features={"a": feats["a"], "z": feats["a"]})
    assert str(err.value) == (
        "features: expected the features of every model, one each; no features for "
        "'b'; no model 'z' (the models are a, b)"
    )
    ok = {"a": feats["a"], "b": feats["a"]}
    with pytest.raises(ValueError, match=r"^feature_scores: expected distinct names"):
        leepfast.rank(dumps, y, features=ok, feature_scores=("logme", "leep"))
    with pytest.raises(TypeError, match=r"^feature_scores: expected a sequence of score"):
        leepfast.rank(dumps, y, features=ok, feature_scores="logme")
    with pytest.raises(TypeError, match=r"^feature_scores: given without features"):
        leepfast.rank(dumps, y, feature_scores=("logme",))
    with pytest.raises(TypeError, match=r"^features\['a'\]: expected a float16"):
        leepfast.rank(dumps, y, features={"a": np.ones((300, 2), int), "b": feats["a"]})
    with pytest.raises(FileNotFoundError):
        leepfast.rank(dumps, y, features={"a": tmp_path / "none.npy", "b": feats["a"]})
