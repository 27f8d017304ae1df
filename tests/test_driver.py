"""The one loop over row blocks: every driver goes through leepfast._driver."""

import numpy as np
import pytest

import leepfast
from leepfast import _driver


def _data(n=257, z=5, y=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(z), size=n)
    return p, rng.integers(0, y, size=n)


@pytest.mark.parametrize("n_rows", [1, 7, 256, 257, 1000])
def test_array_source_yields_every_row_once_in_order(n_rows):
    p, y = _data()
    source = _driver.ArraySource(p, y, n_rows, first_row=10)
    blocks = list(source.blocks())
    assert [b.first_row for b in blocks] == list(range(10, 10 + len(p), n_rows))
    np.testing.assert_array_equal(np.concatenate([b.rows for b in blocks]), p)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in blocks]), y)
    assert all(np.shares_memory(b.rows, p) for b in blocks)  # views, never copies


def _spy(monkeypatch):
    calls = []
    real = _driver.two_passes

    def spy(acc, source, what="result", progress=False):
        calls.append((type(source).__name__, what))
        return real(acc, source, what, progress)

    monkeypatch.setattr(_driver, "two_passes", spy)
    monkeypatch.setattr("leepfast._api.two_passes", spy)
    return calls


def test_in_memory_and_files_run_through_two_passes(monkeypatch, tmp_path):
    p, y = _data()
    want = leepfast.score(p, y, backend="numpy")
    calls = _spy(monkeypatch)
    assert leepfast.leep(p, y, backend="numpy") == want.leep
    assert leepfast.nce(p, y, backend="numpy") == want.nce
    path = tmp_path / "p.npy"
    np.save(path, p)
    got = leepfast.score_files(path, y, backend="numpy", block_size=50)
    assert got.leep == pytest.approx(want.leep, rel=1e-12)
    assert calls == [
        ("ArraySource", "leep"),
        ("ArraySource", "nce"),
        ("FileRows", "result"),
    ]


def test_block_sizes_change_nothing_but_rounding():
    p, y = _data(n=1000)
    want = leepfast.score(p, y, backend="numpy", block_size=1000)
    for rows in (1, 3, 999):
        got = leepfast.score(p, y, backend="numpy", block_size=rows)
        assert got.leep == pytest.approx(want.leep, rel=1e-13)
        np.testing.assert_array_equal(got.class_counts, want.class_counts)
        np.testing.assert_array_equal(got.hard_counts, want.hard_counts)


def test_the_stable_source_counts_pass_2_as_pass_1():
    # in memory, pass 2 sees the very rows of pass 1: its class counts are pass 1's
    p, y = _data()
    r = leepfast.score(p, y, backend="numpy", block_size=10)
    np.testing.assert_array_equal(r.class_counts, np.bincount(y, minlength=3))


def test_errors_name_the_global_row_of_the_block():
    p, y = _data(n=100)
    p[73] *= 2
    with pytest.raises(leepfast.RowSumError, match=r"^predictions: row 73 sums to 2"):
        leepfast.leep(p, y, backend="numpy", block_size=10)


def test_logits_blocks_are_sized_for_their_cost(monkeypatch):
    # issue 13 item 17: 1 GiB blocks of logits took seconds each (progress, Ctrl-C); the
    # default blocks of logits hold LOGITS_COST times fewer bytes, fixed (not timed), so
    # results never depend on the machine's load
    z = 1000
    probs = _driver.block_rows(None, z, 4, views=True)
    logits = _driver.block_rows(None, z, 4, views=True, logits=True)
    assert probs == _driver.VIEW_BLOCK_BYTES // (4 * z)
    assert logits == _driver.VIEW_BLOCK_BYTES // (4 * z * _driver.LOGITS_COST)
    assert _driver.block_rows(None, z, 4, logits=True) == (
        _driver.DEFAULT_BLOCK_BYTES // (4 * z * _driver.LOGITS_COST)
    )
    assert _driver.block_rows(7, z, 4, views=True, logits=True) == 7  # as given

    seen = []
    real = _driver.ArraySource.__init__

    def spy(self, rows, labels, n_rows, first_row=0):
        seen.append(n_rows)
        real(self, rows, labels, n_rows, first_row)

    monkeypatch.setattr(_driver.ArraySource, "__init__", spy)
    x = np.random.default_rng(0).normal(size=(50, z)).astype(np.float32)
    y = np.arange(50) % 3
    leepfast.leep(x, y, logits=True, backend="cython")
    leepfast.leep(np.full((50, z), 1 / z, np.float32), y, backend="cython")
    assert seen == [logits, probs]
