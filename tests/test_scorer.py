"""The feed-once Scorer: equal to score() on the same batches, memory bounded by its
budget, and no spill ever left behind."""

import os
import tracemalloc

import numpy as np
import pytest

import leepfast
from leepfast._errors import FileChangedError, RowSumError


def _batches(n=3000, z=12, y=5, dtype=np.float64, seed=0, size=400):
    rng = np.random.default_rng(seed)
    theta = rng.dirichlet(np.ones(z), n).astype(dtype)
    labels = rng.integers(0, y, n)
    return (
        theta,
        labels,
        [(theta[i : i + size], labels[i : i + size]) for i in range(0, n, size)],
    )


def _spill_fds(folder):
    """This process's descriptors open on a file in ``folder`` (a spill is unlinked at
    creation, so only /proc shows it, as 'folder/#inode (deleted)')."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep):
            out.append(target)
    return out


@pytest.mark.parametrize("budget", [0, 20_000, 1 << 30])  # file, mixed, memory
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_scorer_equals_score_on_the_same_batches(backend, budget, dtype, tmp_path):
    theta, labels, batches = _batches(dtype=dtype)
    want = leepfast.score(theta, labels, backend=backend)
    scorer = leepfast.Scorer(backend=backend, spill_dir=tmp_path, memory_budget=budget)
    for t, y in batches:
        scorer.add(t, y)
    got = scorer.result()
    assert got.leep == pytest.approx(want.leep, rel=1e-12)
    assert got.nce == pytest.approx(want.nce, rel=1e-12)
    np.testing.assert_array_equal(got.result.class_counts, want.class_counts)
    assert list(tmp_path.iterdir()) == []
    assert scorer.result() is got  # asking again gives the same answer


def test_scorer_on_logits_and_with_features(tmp_path):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(900, 7)).astype(np.float32)
    labels = rng.integers(0, 3, 900)
    feats = rng.normal(size=(900, 6)) + labels[:, None]
    scorer = leepfast.Scorer(
        n_target=3, features=True, logits=True, spill_dir=tmp_path, memory_budget=10_000
    )
    for i in range(0, 900, 128):
        sl = slice(i, i + 128)
        scorer.add(logits[sl], labels[sl], features=feats[sl])
    got = scorer.result()
    assert got.leep == pytest.approx(
        leepfast.leep(logits, labels, logits=True, n_target=3), rel=1e-12
    )
    assert got.h_score == pytest.approx(leepfast.h_score(feats, labels), rel=1e-9)
    assert got.logme == pytest.approx(leepfast.logme(feats, labels), rel=1e-9)
    assert got.regularized_h_score == pytest.approx(
        leepfast.regularized_h_score(feats, labels), rel=1e-9
    )
    assert set(got.to_dict()) >= {"leep", "nce", "h_score", "logme"}


def test_the_spill_goes_to_spill_dir_and_is_never_visible(tmp_path):
    _, _, batches = _batches()
    scorer = leepfast.Scorer(spill_dir=tmp_path, memory_budget=0)
    scorer.add(*batches[0])
    held = _spill_fds(tmp_path)
    assert len(held) == 1 and held[0].endswith("(deleted)"), held
    assert list(tmp_path.iterdir()) == []  # unlinked at creation
    scorer.result()
    assert _spill_fds(tmp_path) == []


def test_no_spill_survives_an_error_or_ctrl_c(tmp_path):
    _, _, batches = _batches()
    scorer = leepfast.Scorer(spill_dir=tmp_path, memory_budget=0)
    scorer.add(*batches[0])
    bad = batches[1][0].copy()
    bad[5] *= 2.0
    with pytest.raises(RowSumError, match=r"^predictions: row 405 sums to 2;"):
        scorer.add(bad, batches[1][1])
    assert _spill_fds(tmp_path) == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match=r"^add: the scorer is closed$"):
        scorer.add(*batches[2])

    scorer = leepfast.Scorer(spill_dir=tmp_path, memory_budget=0)
    for t, y in batches:
        scorer.add(t, y)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    scorer._acc.step = interrupted
    with pytest.raises(KeyboardInterrupt):
        scorer.result()
    assert _spill_fds(tmp_path) == [] and list(tmp_path.iterdir()) == []

    scorer = leepfast.Scorer(spill_dir=tmp_path, memory_budget=0)
    scorer.add(*batches[0])
    del scorer  # garbage collection frees it too
    assert _spill_fds(tmp_path) == []


def test_a_spill_changed_behind_the_scorers_back_is_an_error(tmp_path):
    _, _, batches = _batches()
    scorer = leepfast.Scorer(spill_dir=tmp_path, memory_budget=0)
    for t, y in batches:
        scorer.add(t, y)
    os.ftruncate(scorer._spill.file.fileno(), 100)
    with pytest.raises(
        FileChangedError,
        match=r"^spill: the temporary file in .* holds "
        r"100 bytes, expected \d+; it was changed while scoring$",
    ):
        scorer.result()


def _stream_peak(backend, budget, batches, tmp_path):
    """(peak bytes NumPy allocated while a Scorer streams ``batches`` and scores them,
    the result); the batches are views of arrays made beforehand."""
    warm = leepfast.Scorer(backend=backend, spill_dir=tmp_path, memory_budget=0)
    for t, y in batches[:2]:  # the modules a stream imports on first use, not counted
        warm.add(t, y)
    warm.result()
    tracemalloc.start()
    try:
        scorer = leepfast.Scorer(backend=backend, spill_dir=tmp_path, memory_budget=budget)
        for t, y in batches:
            scorer.add(t, y)
        got = scorer.result()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, got


# the dump is 20 batches; the budget holds none, 2 of them (then the file) or all
@pytest.mark.parametrize("held", [0, 2, 20])
def test_peak_memory_is_the_budget_plus_one_batch(backend, held, tmp_path):
    # DESIGN section 5: a feed-once stream adds only its spill budget (plus one batch,
    # the one read back from the file for pass 2, and the Y x Z state). The compiled
    # kernels take blocks as they are and allocate only O(Z) per thread outside NumPy
    # (the NumPy backend's temporaries: the test below), so NumPy's allocations, which
    # tracemalloc sees exactly, are the whole of it: the batches kept in memory, the
    # batch read back, the 10 x 100 state and small arrays (the slack, well under one
    # batch: a second batch alive at once fails)
    theta, labels, batches = _batches(n=40_000, z=100, y=10, size=2000)
    labels = labels.astype(np.int64)
    batches = [(t, y.astype(np.int64)) for t, y in batches]
    batch = batches[0][0].nbytes + batches[0][1].nbytes
    budget = held * batch + batch // 2
    if backend == "numpy":
        pytest.skip("block-sized temporaries: test_peak_memory_numpy_backend")
    peak, got = _stream_peak(backend, budget, batches, tmp_path)
    assert got.leep == pytest.approx(leepfast.leep(theta, labels), rel=1e-12)
    kept = held * batch  # the batches the spill holds in memory, within the budget
    read_back = batch if held < len(batches) else 0
    slack = 128 << 10
    assert peak <= kept + read_back + slack, (peak, kept, read_back, batch)
    assert peak <= budget + batch + slack  # the promise of the docstring


def test_peak_memory_numpy_backend(tmp_path):
    # the NumPy backend's float64 copy of a block and its softmax work space are its
    # "one block" of temporaries on top of the spill's budget and one batch read back
    theta, labels, batches = _batches(n=40_000, z=100, y=10, size=2000)
    labels = labels.astype(np.int64)
    batch = batches[0][0].nbytes + batches[0][1].nbytes
    budget = (theta.nbytes + labels.nbytes) // 10
    peak, got = _stream_peak("numpy", budget, batches, tmp_path)
    assert got.leep == pytest.approx(leepfast.leep(theta, labels), rel=1e-12)
    assert peak <= budget + 3 * batch + (256 << 10), (peak, budget, batch)


def test_scorer_arguments():
    budget = r"^memory_budget: expected bytes as an integer >= 0, got float$"
    with pytest.raises(TypeError, match=budget):
        leepfast.Scorer(memory_budget=1.5)
    with pytest.raises(ValueError, match=r"^memory_budget: .* got -1$"):
        leepfast.Scorer(memory_budget=-1)
    folder = r"^spill_dir: expected an existing folder, got '/no/such/folder'$"
    with pytest.raises(NotADirectoryError, match=folder):
        leepfast.Scorer(spill_dir="/no/such/folder")
    theta = np.array([[0.5, 0.5]])
    with pytest.raises(TypeError, match=r"^features: expected an array"):
        leepfast.Scorer(features=True).add(theta, [0])
    with pytest.raises(TypeError, match=r"^features: given, but"):
        leepfast.Scorer().add(theta, [0], features=np.ones((1, 2)))
    with pytest.raises(TypeError, match=r"^features: expected True or False"):
        leepfast.Scorer(features="yes")
