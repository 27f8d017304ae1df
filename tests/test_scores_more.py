"""TransRate, GBC and N-LEEP against their public code's definitions (written out in
``leepfast._reference`` and, for N-LEEP, the public pipeline run here with scikit-learn),
on shared seeded inputs."""

import numpy as np
import pytest

import leepfast
from leepfast import _reference
from leepfast._errors import LabelError, NonFiniteError, StateSizeError


def _features(n=600, d=12, y=4, seed=0, offset=50.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, y, n)
    centres = rng.normal(size=(y, d)) * 2
    feats = centres[labels] + rng.normal(size=(n, d)) + offset  # a large common mean
    return feats, labels


@pytest.mark.parametrize("block_size", [None, 37])
def test_transrate_equals_the_public_definition(block_size):
    f, y = _features()
    got = leepfast.transrate(f, y, block_size=block_size)
    assert got == pytest.approx(_reference.transrate(f, y), rel=1e-10)
    assert leepfast.transrate(f.astype(np.float32), y) == pytest.approx(
        _reference.transrate(f.astype(np.float32).astype(np.float64), y), rel=1e-9
    )


def test_transrate_ignores_absent_classes_and_ranks_separability():
    f, y = _features()
    shifted = y * 2  # classes 0, 2, 4, 6: the same partition
    assert leepfast.transrate(f, shifted) == pytest.approx(
        leepfast.transrate(f, y), rel=1e-12
    )
    rng = np.random.default_rng(1)
    assert leepfast.transrate(f, rng.permutation(y)) < leepfast.transrate(f, y)


def test_transrate_refuses_a_state_past_its_budget():
    f, y = _features(d=40)
    with pytest.raises(
        StateSizeError,
        match=r"^features: TransRate needs 4 per-class "
        r"Gram matrices of 40 x 40 .* more than max_state_bytes=1000;",
    ):
        leepfast.transrate(f, y, max_state_bytes=1000)


@pytest.mark.parametrize("gaussian", ["spherical", "diagonal"])
@pytest.mark.parametrize("block_size", [None, 50])
def test_gbc_equals_the_public_definition(gaussian, block_size):
    f, y = _features()
    got = leepfast.gbc(f, y, gaussian=gaussian, block_size=block_size)
    assert got == pytest.approx(_reference.gbc(f, y, gaussian), rel=1e-10)
    assert got < 0


def test_gbc_with_pca_equals_the_definition_on_projected_features():
    sklearn = pytest.importorskip("sklearn.decomposition")
    f, y = _features(d=20)
    projected = sklearn.PCA(n_components=5).fit_transform(f)  # signs may differ: no matter
    for gaussian in ("spherical", "diagonal"):
        assert leepfast.gbc(f, y, gaussian=gaussian, pca=5) == pytest.approx(
            _reference.gbc(projected, y, gaussian), rel=1e-8
        )


def test_gbc_by_hand_two_classes_one_dimension():
    # classes at 0 and 2 with variance 1 each: D_B = (2^2 / 1) / 8 = 1/2, both orders
    f = np.array([[-1.0], [1.0], [1.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    assert leepfast.gbc(f, y, gaussian="diagonal") == pytest.approx(
        -2 * np.exp(-0.5), rel=1e-15
    )


def test_nleep_equals_the_public_pipeline():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    f, y = _features(n=400, d=10, y=3)
    reduced = PCA(n_components=0.8).fit_transform(f)
    gmm = GaussianMixture(n_components=15, random_state=0).fit(reduced)
    want = _reference.leep(gmm.predict_proba(reduced), y)
    got = leepfast.nleep(f, y, random_state=0)
    assert got == pytest.approx(want, rel=1e-7)
    assert got <= 0
    del sklearn


def test_bad_inputs_of_the_new_scores():
    f, y = _features(n=50)
    bad = f.copy()
    bad[7, 3] = np.nan
    for score in (leepfast.transrate, leepfast.gbc):
        with pytest.raises(NonFiniteError, match=r"^features: row 7 contains NaN"):
            score(bad, y)
        with pytest.raises(ValueError, match=r"^labels: expected 50 labels"):
            score(f, y[:-1])
    with pytest.raises(LabelError, match=r"^labels: GBC needs at least 2 classes, got 1$"):
        leepfast.gbc(f, np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match=r"^gaussian: expected 'spherical' or 'diagonal'"):
        leepfast.gbc(f, y, gaussian="full")


def test_transrate_gbc_and_nleep_take_files_as_the_other_feature_scores(tmp_path):
    # files (one, shards of two dtypes, byte-swapped) and label files: read whole, the
    # same values as the arrays
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 500)
    f = rng.normal(size=(500, 6)) + np.eye(6)[y]
    np.save(tmp_path / "f.npy", f)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "0.npy", f[:200].astype(">f8"))
    np.save(tmp_path / "shards" / "1.npy", f[200:])
    for source in (tmp_path / "f.npy", str(tmp_path / "shards")):
        for labels in (y, tmp_path / "y.npy"):
            assert leepfast.transrate(source, labels) == leepfast.transrate(f, y)
            assert leepfast.gbc(source, labels) == leepfast.gbc(f, y)
            assert leepfast.nleep(source, labels, random_state=0) == leepfast.nleep(
                f, y, random_state=0
            )
    with pytest.raises(FileNotFoundError):
        leepfast.gbc(tmp_path / "missing.npy", y)
    with pytest.raises(ValueError, match=r"^labels: expected 500 labels"):
        leepfast.gbc(tmp_path / "f.npy", y[:-1])
