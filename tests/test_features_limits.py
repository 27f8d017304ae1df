"""Feature scores at their limits: values too large for float64, stray labels and
absurd n_target, absent classes, an empty accumulator, bytes paths, and messages said
of features (never of predictions or n_source)."""

import importlib.util
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import leepfast
from leepfast._errors import (
    FileFormatError,
    InputError,
    LabelError,
    NonFiniteError,
    ShapeError,
    StateSizeError,
)
from leepfast._features import FeatureAccumulator, feature_statistics

SCORES = ("h_score", "regularized_h_score", "logme")


def _sibling(name):
    """A module of this folder (pytest runs with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(
        f"_{name}", Path(__file__).with_name(f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the straightforward implementations written out in test_features.py
_direct = _sibling("test_features")


def make_data(n, D, Y, seed, signal=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % Y
    rng.shuffle(y)
    f = rng.normal(size=(Y, D))[y] * signal + rng.normal(size=(n, D))
    return f, y


def all_scores(acc):
    return np.array([acc.h_score(), acc.regularized_h_score(), acc.logme()])


# ---------------------------------------------------------------------------------------
# Values too large to accumulate in float64


@pytest.mark.parametrize("name", SCORES)
@pytest.mark.parametrize("block_size", [None, 7])
def test_features_whose_squares_overflow_raise_one_clear_error(name, block_size):
    f, y = make_data(200, 8, 4, seed=1)
    with pytest.raises(NonFiniteError) as info:
        getattr(leepfast, name)(f * 1e155, y, block_size=block_size)
    assert info.value.argument == "features"
    assert str(info.value).startswith(
        "features: values too large to accumulate in float64: the sum of squares"
    )


def test_overflow_of_the_running_sum_is_caught_across_blocks():
    # each row's square fits, their sum over the rows does not
    f = np.where(np.arange(200) % 2 == 0, 1.2e153, -1.2e153)[:, None]
    y = np.arange(200) % 2
    for block_size in (1, 50, None):
        with pytest.raises(NonFiniteError, match=r"sum of squares"):
            leepfast.h_score(f, y, block_size=block_size)


def test_fourth_moments_overflow_only_refuses_the_regularized_score():
    f, y = make_data(200, 8, 4, seed=2)
    big = f * 1e80  # squares fit in float64, fourth powers do not
    # the H-score is scale-invariant: the same value, computed, not refused
    assert leepfast.h_score(big, y) == pytest.approx(leepfast.h_score(f, y), rel=1e-9)
    assert np.isfinite(leepfast.logme(big, y))
    with pytest.raises(NonFiniteError, match=r"^features: values too large.*\^4"):
        leepfast.regularized_h_score(big, y)
    # at 1e60 the fourth moments fit: the regularized score is scale-invariant too
    assert leepfast.regularized_h_score(f * 1e60, y) == pytest.approx(
        leepfast.regularized_h_score(f, y), rel=1e-9
    )


def test_a_failed_update_leaves_the_accumulator_unchanged():
    f, y = make_data(100, 5, 3, seed=3)
    acc = FeatureAccumulator().update(f[:60], y[:60])
    before = all_scores(acc)
    bad = f[60:].copy()
    bad[7] *= 1e160
    with pytest.raises(NonFiniteError):
        acc.update(bad, y[60:], first_row=60)
    assert acc.n_samples == 60
    np.testing.assert_array_equal(all_scores(acc), before)


def test_nan_still_names_its_row_and_class():
    f, y = make_data(50, 4, 2, seed=4)
    f[31, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"^features: row 31 contains NaN") as info:
        leepfast.logme(f, y, block_size=8)
    assert info.value.argument == "features"


# ---------------------------------------------------------------------------------------
# State size: stray labels and n_target


@pytest.mark.parametrize("name", SCORES)
def test_a_stray_huge_label_is_refused_before_allocating(name):
    f, y = make_data(100, 64, 3, seed=5)
    y = y.astype(np.int64)
    y[17] = 2**62
    with pytest.raises(StateSizeError, match=rf"is {2**62} meant to be a label") as info:
        getattr(leepfast, name)(f, y)
    assert info.value.argument == "labels"
    assert "n_features=64" in str(info.value)


@pytest.mark.parametrize("name", SCORES)
def test_an_absurd_n_target_is_refused_before_allocating(name):
    f, y = make_data(100, 64, 3, seed=6)
    with pytest.raises(StateSizeError, match=r"^n_target=1000000000 .*check n_target"):
        getattr(leepfast, name)(f, y, n_target=10**9)
    with pytest.raises(StateSizeError) as info:
        FeatureAccumulator(10**9).update(f, y)
    assert info.value.argument == "n_target"


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", SCORES)
def test_a_stray_large_label_costs_nothing_and_changes_nothing(name):
    # one stray label 200,000: Y = 200,001 classes, all but four absent. The value is
    # that of the same data with the stray class relabelled 3 (absent classes do not
    # exist), and no (Y, D) array is made: a dense one would be 102 MB here
    f, y = make_data(400, 64, 3, seed=7)
    stray = y.copy()
    stray[11] = 200_000
    compact = y.copy()
    compact[11] = 3
    fn = getattr(leepfast, name)
    want = fn(f, compact)
    assert fn(f, stray) == pytest.approx(want, rel=1e-12)
    assert _peak_bytes(lambda: fn(f, stray)) < 20e6
    acc = feature_statistics(f, stray)
    counts = acc.class_counts
    assert counts.shape == (200_001,)
    assert counts[200_000] == 1 and counts.sum() == 400 and np.count_nonzero(counts) == 4


# ---------------------------------------------------------------------------------------
# Absent classes: as if they did not exist


def test_absent_classes_do_not_change_any_score():
    f, y = make_data(150, 6, 3, seed=8)
    ref = all_scores(feature_statistics(f, y))
    gap = np.where(y == 2, 5, y)  # labels 0, 1, 5: classes 2, 3, 4 absent
    for labels, n_target in [(y, 7), (gap, None), (gap, 9)]:
        got = all_scores(feature_statistics(f, labels, n_target=n_target))
        np.testing.assert_allclose(got, ref, rtol=1e-12)
    # invariant under relabelling the classes too
    perm = np.array([2, 0, 1])[y]
    np.testing.assert_allclose(all_scores(feature_statistics(f, perm)), ref, rtol=1e-12)


def test_logme_leaves_absent_classes_out_where_the_authors_average_zero_columns():
    # the authors' code averages over range(max(label) + 1): an absent class below the
    # largest label enters as the evidence of an all-zero target, which is large
    logme_direct = _direct.logme_direct
    f, y = make_data(120, 6, 3, seed=9)
    gap = np.where(y == 2, 3, y)
    assert abs(leepfast.logme(f, y) - logme_direct(f, y)) < 1e-6
    assert leepfast.logme(f, gap) == pytest.approx(leepfast.logme(f, y), rel=1e-12)
    assert logme_direct(f, gap) > leepfast.logme(f, gap) + 0.5


# ---------------------------------------------------------------------------------------
# An empty accumulator


STATISTICS = [
    ("class_counts", lambda a: a.class_counts),
    ("mean", lambda a: a.mean),
    ("gram", lambda a: a.gram()),
    ("class_sums", lambda a: a.class_sums()),
    ("covariance", lambda a: a.covariance()),
    ("between_class_covariance", lambda a: a.between_class_covariance()),
    ("ledoit_wolf", lambda a: a.ledoit_wolf()),
    ("h_score", lambda a: a.h_score()),
    ("regularized_h_score", lambda a: a.regularized_h_score()),
    ("logme", lambda a: a.logme()),
]


@pytest.mark.parametrize(("what", "get"), STATISTICS, ids=[s[0] for s in STATISTICS])
def test_every_statistic_of_an_empty_accumulator_raises_one_clear_error(what, get):
    for acc in (
        FeatureAccumulator(),
        FeatureAccumulator(4),
        FeatureAccumulator().update(np.ones((0, 3)), np.zeros(0, dtype=int)),
    ):
        assert acc.n_samples == 0
        with pytest.raises(ShapeError, match=rf"^{what}: no rows were added"):
            get(acc)
    acc = FeatureAccumulator()
    assert acc.n_features is None and acc.shift is None


def test_empty_accumulators_merge_to_the_other_one():
    f, y = make_data(90, 4, 3, seed=10)
    ref = all_scores(feature_statistics(f, y))
    full = feature_statistics(f, y)
    np.testing.assert_allclose(all_scores(FeatureAccumulator().merge(full)), ref)
    np.testing.assert_allclose(all_scores(full.merge(FeatureAccumulator())), ref)


def test_merge_beyond_n_target_is_a_label_error():
    f, y = make_data(60, 4, 5, seed=11)
    with pytest.raises(LabelError, match=r"merge: .*label 4; expected labels in \[0, 3\)"):
        FeatureAccumulator(3).merge(FeatureAccumulator().update(f, y))


# ---------------------------------------------------------------------------------------
# Many classes per block, classes met in any order, merge of class tables


def test_many_classes_per_block_and_any_class_order():
    # 700 classes (more than the slice-sum limit per block), blocks that meet them in
    # different orders, and shards merged with different class tables
    f, y = make_data(2100, 5, 700, seed=12)
    h_score_direct = _direct.h_score_direct
    ref = all_scores(feature_statistics(f, y))
    assert ref[0] == pytest.approx(h_score_direct(f, y), rel=1e-9)
    for block_size in (97, 1000):
        np.testing.assert_allclose(
            all_scores(feature_statistics(f, y, block_size=block_size)), ref, rtol=1e-10
        )
    order = np.argsort(-y, kind="stable")  # the last classes first
    parts = [FeatureAccumulator().update(f[order][a:b], y[order][a:b]) for a, b in
             [(0, 500), (500, 1500), (1500, 2100)]]  # fmt: skip
    merged = parts[1].merge(parts[0]).merge(parts[2])
    np.testing.assert_allclose(all_scores(merged), ref, rtol=1e-10)
    np.testing.assert_array_equal(merged.class_counts, np.bincount(y))
    np.testing.assert_allclose(
        merged.class_sums(), feature_statistics(f, y).class_sums(), rtol=1e-12, atol=1e-12
    )


def test_logme_of_many_unequal_classes_matches_the_direct_evidence():
    # classes of very different sizes stop their fixed-point iterations at different
    # steps: the vectorised iteration must stop each where the per-class loop does
    logme_direct = _direct.logme_direct
    rng = np.random.default_rng(13)
    y = rng.choice(40, size=600, p=np.arange(1, 41) / np.arange(1, 41).sum())
    f = rng.normal(size=(40, 12))[y] * rng.uniform(0, 2, size=(40, 1))[y]
    f += rng.normal(size=(600, 12))
    present = np.unique(y)
    compact = np.searchsorted(present, y)
    assert abs(leepfast.logme(f, y) - logme_direct(f, compact)) < 1e-6


# ---------------------------------------------------------------------------------------
# Bytes paths and messages said of features


def test_bytes_paths_are_paths(tmp_path):
    f, y = make_data(80, 5, 3, seed=14)
    np.save(tmp_path / "f.npy", f)
    np.save(tmp_path / "y.npy", y)
    ref = leepfast.h_score(f, y)
    fb, yb = os.fsencode(tmp_path / "f.npy"), os.fsencode(tmp_path / "y.npy")
    for name in SCORES:
        want = getattr(leepfast, name)(f, y)
        assert getattr(leepfast, name)(fb, yb) == pytest.approx(want, rel=1e-12)
    assert leepfast.h_score([fb], y) == pytest.approx(ref, rel=1e-12)
    assert leepfast.h_score(f, yb) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(FileNotFoundError, match=r"^features: no such file"):
        leepfast.logme(b"/nonexistent/f.npy", y)


def _message(fn):
    with pytest.raises((ValueError, TypeError, OSError)) as info:
        fn()
    msg = str(info.value)
    assert "prediction" not in msg and "n_source" not in msg and "source class" not in msg
    return info.value


def test_every_file_message_speaks_of_features(tmp_path):
    f, y = make_data(20, 3, 2, seed=15)
    raw = tmp_path / "f.raw"
    f.astype("<f8").tofile(raw)
    np.save(tmp_path / "f.npy", f)
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    (tmp_path / "short.txt").write_text("")

    err = _message(lambda: leepfast.h_score(raw, y))
    assert str(err).startswith("dtype: raw (non-.npy) feature files need a dtype")
    assert "n_features" in str(err)
    err = _message(lambda: leepfast.h_score(raw, y, dtype="float64"))
    assert str(err).startswith("n_features: raw (non-.npy) feature files need n_features")
    err = _message(lambda: leepfast.h_score(raw, y, dtype="float64", n_features=7))
    assert isinstance(err, FileFormatError) and err.argument == "features"
    assert "check dtype and n_features" in str(err)
    err = _message(lambda: leepfast.h_score(raw, y, dtype="float64", n_features="3"))
    assert str(err).startswith("n_features: expected a positive integer")
    err = _message(lambda: leepfast.logme(tmp_path / "f.npy", y, n_features=4))
    assert "has 3 features, but n_features=4 was given" in str(err)
    err = _message(lambda: leepfast.logme(tmp_path / "empty.npy", y))
    assert str(err).startswith("features (file ")
    assert "expected at least one sample and one feature" in str(err)
    err = _message(lambda: leepfast.logme(tmp_path / "f.npy", tmp_path / "short.txt"))
    assert str(err).startswith("labels (file ")
    err = _message(lambda: leepfast.logme(f, tmp_path / "short.txt"))
    assert str(err).startswith("labels (file ")


def test_in_memory_messages_speak_of_features_with_their_classes():
    f, y = make_data(20, 3, 2, seed=16)
    err = _message(lambda: leepfast.logme(f, y[:19]))
    assert isinstance(err, ShapeError) and err.argument == "labels"
    assert str(err) == "labels: expected 20 labels (one per row of features), got 19"
    err = _message(lambda: FeatureAccumulator().update(f, y[:3]))
    assert "one per row of features" in str(err)
    err = _message(lambda: leepfast.h_score(np.ones(4), np.zeros(4, dtype=int)))
    assert isinstance(err, ShapeError) and err.argument == "features"
    bad = y.copy()
    bad[2] = 7
    err = _message(lambda: leepfast.logme(f, bad, n_target=3))
    assert isinstance(err, LabelError) and err.argument == "labels"
    err = _message(lambda: FeatureAccumulator().update(f, y).update(np.ones((2, 4)), y[:2]))
    assert isinstance(err, ShapeError) and err.argument == "features"
    err = _message(lambda: leepfast.h_score(f[:1], y[:1]))
    assert isinstance(err, ShapeError) and isinstance(err, InputError)


def test_feature_messages_leave_paths_alone(tmp_path):
    # the file's path holds "predictions" and "n_source": the message, said of features
    # by the readers' role, names the path as it is
    folder = tmp_path / "predictions"
    folder.mkdir()
    f, y = make_data(20, 3, 2, seed=17)
    np.save(folder / "n_source.npy", f)
    with pytest.raises(FileFormatError) as info:
        leepfast.h_score(folder / "n_source.npy", y, n_features=4)
    assert info.value.argument == "features"
    assert str(info.value) == (
        f"features (file {folder / 'n_source.npy'}): has 3 features, but "
        "n_features=4 was given"
    )


def test_between_class_covariance_is_np_cov_of_the_class_means():
    f, y = make_data(90, 4, 3, seed=17)
    g = np.empty_like(f)
    for c in range(3):
        g[y == c] = f[y == c].mean(axis=0)
    acc = feature_statistics(f, np.where(y == 2, 6, y))  # with absent classes
    for ddof in (0, 1):
        want = np.cov(g, rowvar=False, ddof=ddof)
        np.testing.assert_allclose(acc.between_class_covariance(ddof), want, rtol=1e-12)
