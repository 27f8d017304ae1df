"""The Numba backend's own contract: the backend protocol (pass 2 validates each row as
pass 1 does, finalize, TAKES_LARGE_VIEWS), no global side effect on Numba's thread
count, and a child forked after a call computes the right value."""

import inspect
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import leepfast
from leepfast import _reference, _status
from leepfast.backends import numpy as numpy_backend

numba = pytest.importorskip("numba")
nb = pytest.importorskip("leepfast.backends.numba")
cy = pytest.importorskip("leepfast.backends.cython")

TOL = {np.dtype(k): v for k, v in leepfast.ROW_SUM_TOLERANCE.items()}
DTYPES = (np.float16, np.float32, np.float64)


def _probabilities(rng, n, n_source, dtype):
    theta = rng.dirichlet(np.ones(n_source), size=n)
    return theta.astype(dtype)


def _slots(n_slots, n_target, n_source):
    return (
        np.zeros((n_slots, n_target, n_source)),
        np.zeros((n_slots, n_target, n_source), dtype=np.int64),
        np.zeros((n_slots, n_target), dtype=np.int64),
    )


def _conditional(theta, labels, n_target):
    return _reference.conditional(
        _reference.joint(theta.astype(np.float64), labels, n_target)
    )


def _pass1(backend, block, labels, n_target, logits, n_threads):
    tol = TOL[block.dtype]
    joint, hard, counts = _slots(backend.n_slots(n_threads), n_target, block.shape[1])
    return backend.accumulate(block, labels, joint, hard, counts, logits, tol, n_threads)


# ---------------------------------------------------------------------------------------
# The protocol


def test_protocol_members():
    from leepfast.backends import PROTOCOL

    assert nb.TAKES_LARGE_VIEWS is True
    for member in ("score", "accumulate", "finalize"):
        params = tuple(inspect.signature(getattr(nb, member)).parameters)
        assert params == PROTOCOL[member], member
    assert PROTOCOL["score"] == (
        "block",
        "labels",
        "conditional",
        "logits",
        "tol",
        "n_threads",
    )


def _corrupt(kind, block, labels, row):
    """A copy of (block, labels) with row ``row`` made bad in the way ``kind`` says."""
    block = block.copy()
    labels = labels.copy()
    if kind == "label":
        labels[row] = 99
    elif kind == "nan":
        block[row, 1] = np.nan
    elif kind == "inf":
        block[row, 0] = np.inf
    elif kind == "negative":
        block[row, 0], block[row, 1] = -0.25, block[row, 1] + 0.25
    elif kind == "sum":
        block[row] *= 1.5
    elif kind == "sum_small":
        block[row] *= 0.5
    return block, labels


KINDS = ["label", "nan", "inf", "negative", "sum", "sum_small"]
EXPECTED = {
    "label": _status.ERR_LABEL,
    "nan": _status.ERR_NONFINITE,
    "inf": _status.ERR_NONFINITE,
    "negative": _status.ERR_NEGATIVE,
    "sum": _status.ERR_NOT_NORMALISED,
    "sum_small": _status.ERR_NOT_NORMALISED,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_pass2_validates_rows_like_pass1(dtype, kind, n_threads):
    # Pass 2 over a block whose rows changed after pass 1 (a file re-dumped between the
    # passes): the same status and first bad row as pass 1 on that block, for numba, the
    # compiled backend's pass 1 and the reference's; before, numba's pass 2 summed the
    # bad rows into a wrong (even positive) LEEP.
    rng = np.random.default_rng(7)
    n, n_source, n_target = 3000, 9, 4
    good = _probabilities(rng, n, n_source, dtype)
    labels = rng.integers(0, n_target, n).astype(np.int64)
    conditional = _conditional(good, labels, n_target)
    for rows in ([2999], [1234, 2500], [0, 17]):  # first bad row in later chunks too
        block, bad_labels = good, labels
        for row in rows[::-1]:
            block, bad_labels = _corrupt(kind, block, bad_labels, row)
        if kind == "sum" and dtype == np.float16:
            assert np.isfinite(block[rows[0]]).all()
        want = (EXPECTED[kind], rows[0])
        tol = TOL[block.dtype]
        assert (
            numpy_backend.first_invalid_row(
                block.astype(np.float64), bad_labels, n_target, tol, False
            )
            == want
        )
        assert _pass1(nb, block, bad_labels, n_target, False, n_threads) == want
        assert _pass1(cy, block, bad_labels, n_target, False, n_threads) == want
        status, row, total = nb.score(block, bad_labels, conditional, False, tol, n_threads)
        assert (status, row, total) == (*want, 0.0), (kind, rows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["label", "nan", "inf"])
def test_pass2_validates_logit_rows_like_pass1(dtype, kind):
    rng = np.random.default_rng(8)
    n, n_source, n_target = 2500, 6, 3
    good = (rng.normal(size=(n, n_source)) * 3).astype(dtype)
    labels = rng.integers(0, n_target, n).astype(np.int64)
    theta = _reference.softmax(good.astype(np.float64))
    conditional = _conditional(theta, labels, n_target)
    block, bad_labels = _corrupt(kind, good, labels, 2100)
    block, bad_labels = _corrupt(kind, block, bad_labels, 1500)
    want = (EXPECTED[kind], 1500)
    assert _pass1(nb, block, bad_labels, n_target, True, 2) == want
    assert _pass1(cy, block, bad_labels, n_target, True, 2) == want
    # logits: no sign or sum check (a negative logit is fine)
    block2 = good.copy()
    block2[5] = -abs(block2[5])
    assert nb.score(block2, labels, conditional, True, TOL[block.dtype], 2)[:2] == (0, -1)
    assert nb.score(block, bad_labels, conditional, True, TOL[block.dtype], 2) == (
        *want,
        0.0,
    )


def test_pass2_on_valid_rows_unchanged_and_zero_mass_still_detected():
    rng = np.random.default_rng(9)
    theta = _probabilities(rng, 5000, 7, np.float64)
    labels = rng.integers(0, 3, 5000).astype(np.int64)
    conditional = _conditional(theta, labels, 3)
    status, row, total = nb.score(theta, labels, conditional, False, 1e-6, 2)
    assert (status, row) == (0, -1)
    want = np.log((theta * conditional[labels]).sum(axis=1)).sum()
    assert total == pytest.approx(want, rel=1e-12)
    # a valid row that has no mass under C: still ERR_ZERO_PROB, not a row-sum error
    c = conditional.copy()
    c[labels[4321]] = 0.0
    assert nb.score(theta, labels, c, False, 1e-6, 2)[:2] == (
        _status.ERR_ZERO_PROB,
        int(np.argmax(labels == labels[4321])),
    )


def test_pass2_uses_tol():
    # the same row is fine under a loose tolerance and refused under a tight one
    theta = np.array([[0.5, 0.5 + 1e-4], [0.25, 0.75]])
    labels = np.array([0, 1])
    c = _conditional(theta, labels, 2)
    assert nb.score(theta, labels, c, False, 1e-3, 1)[:2] == (0, -1)
    assert nb.score(theta, labels, c, False, 1e-6, 1) == (
        _status.ERR_NOT_NORMALISED,
        0,
        0.0,
    )


@pytest.mark.parametrize("n_slots", [1, 2, 3])
def test_finalize_equals_the_numpy_finalize(n_slots):
    rng = np.random.default_rng(3)
    n_target, n_source = 4, 9
    joint = rng.random((n_slots, n_target, n_source))
    joint[:, :, 5] = 0.0  # a source class without mass: C is 0 there
    hard = rng.integers(0, 4, (n_slots, n_target, n_source))
    hard[0, 1, 2] = 300
    hard[:, :, 6] = 0
    counts = rng.integers(1, 50, (n_slots, n_target))
    joint0, hard0, counts0 = (a.copy() for a in (joint, hard, counts))
    S, H, K, C, M, nce = nb.finalize(joint, hard, counts)
    assert_array_equal(S, joint0.sum(axis=0))
    assert_array_equal(H, hard0.sum(axis=0))
    assert_array_equal(K, counts0.sum(axis=0))
    assert_array_equal(M, S.sum(axis=0))
    ref = numpy_backend.finalize(joint0, hard0, counts0)
    assert_array_equal(C, ref[3])
    assert np.all(C[:, 5] == 0.0)
    assert isinstance(nce, float)
    assert nce == pytest.approx(_reference.nce_from_counts(hard0.sum(axis=0)), rel=1e-14)
    assert nce == pytest.approx(ref[5], rel=1e-14)
    # the compiled backend's finalize gives the same tuple
    got = cy.finalize(joint0.copy(), hard0.copy(), counts0.copy())
    for a, b in zip(got[:5], (S, H, K, C, M), strict=True):
        assert_array_equal(a, b)
    assert got[5] == pytest.approx(nce, rel=1e-13)
    with pytest.raises(ValueError, match="finalize: joint, hard and counts disagree"):
        nb.finalize(joint0, hard0[:, :2], counts0)


def test_finalize_nce_is_summed_carefully():
    # many cells of unequal h log h: the compensated sum stays at float64 rounding
    rng = np.random.default_rng(4)
    hard = rng.integers(0, 3000, (1, 200, 1000))
    joint = rng.random((1, 200, 1000))
    counts = hard.sum(axis=2)
    exact = _reference.nce_from_counts(hard[0].astype(np.float64))
    nce = nb.finalize(joint, hard.copy(), counts)[5]
    assert nce == pytest.approx(exact, rel=1e-14)


# ---------------------------------------------------------------------------------------
# No global side effect on Numba's thread count


def test_thread_count_of_the_caller_is_restored():
    # 13.12: the backend left numba.set_num_threads(n) in force in the calling thread
    rng = np.random.default_rng(5)
    theta = _probabilities(rng, 4000, 5, np.float32)
    labels = rng.integers(0, 3, 4000)
    numba.set_num_threads(1)
    try:
        for n_threads in (2, 1, 100_000):
            for logits in (False, True):
                leepfast.score(
                    theta, labels, backend="numba", n_threads=n_threads, logits=logits
                )
                assert numba.get_num_threads() == 1, n_threads
        if numba.config.NUMBA_NUM_THREADS >= 2:
            numba.set_num_threads(2)
            leepfast.leep(theta, labels, backend="numba", n_threads=1)
            assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_absurd_thread_counts_are_clamped_to_the_team():
    assert nb.n_slots(100_000) == numba.config.NUMBA_NUM_THREADS
    assert nb.n_slots(1) == 1
    rng = np.random.default_rng(6)
    theta = _probabilities(rng, 3000, 5, np.float64)
    labels = rng.integers(0, 3, 3000)
    got = leepfast.leep(theta, labels, backend="numba", n_threads=100_000)
    assert got == pytest.approx(_reference.leep(theta, labels), rel=1e-12)


# ---------------------------------------------------------------------------------------
# Fork after use


def _leep_in_child(args):
    theta, labels = args
    return leepfast.leep(theta, labels, backend="numba", n_threads=2)


def test_forked_child_after_a_call_computes_the_right_value(tmp_path, python_c):
    # 13.2: after one parallel call in the parent, a child forked by multiprocessing
    # was killed by Numba's GNU OpenMP guard ("fork() called from a process already
    # using GNU OpenMP") and Pool.map hung. Run in a fresh interpreter, with a timeout.
    script = textwrap.dedent(
        """
        import multiprocessing as mp
        import numpy as np
        import leepfast
        from leepfast import _reference
        rng = np.random.default_rng(0)
        theta = rng.dirichlet(np.ones(5), size=20000)
        y = rng.integers(0, 3, 20000)
        def run(k):
            return leepfast.leep(theta[k:], y[k:], backend="numba", n_threads=2,
                                 logits=bool(k % 2))
        parent = [run(k) for k in range(4)]
        with mp.get_context("fork").Pool(2) as pool:
            children = pool.map_async(run, range(4)).get(timeout=120)
        assert children == parent, (children, parent)
        want = _reference.leep(theta, y)
        assert abs(parent[0] - want) <= 1e-12 * abs(want), (parent[0], want)
        print("ok")
        """
    )
    proc = python_c(script, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ok"]
    assert "Terminating" not in proc.stderr


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", [1, 2, 10, 16, 17])
def test_short_rows_match_the_reference_with_ties_and_bad_rows(dtype, z):
    # rows of at most 16 values take pass 1 in one loop with the argmax (_add_row_small)
    rng = np.random.default_rng(z)
    n, y_count = 3000, 4
    theta = _probabilities(rng, n, z, dtype)
    theta[::7] = (np.full(z, 1.0 / z)).astype(dtype)  # every entry ties: argmax 0
    if z > 1:
        tied = np.zeros(z)
        tied[z - 2 :] = 0.5
        theta[1::7] = tied.astype(dtype)  # the last two tie: argmax z - 2
        theta[2::7, 0] = -0.0  # not negative
        theta[2::7, 1:] = (np.full(z - 1, 1.0 / (z - 1))).astype(dtype)
    labels = rng.integers(0, y_count, n)
    wide = theta.astype(np.float64)
    r = leepfast.score(theta, labels, n_target=y_count, backend="numba", n_threads=2)
    assert r.leep == pytest.approx(_reference.leep(wide, labels, y_count), rel=1e-12)
    assert_array_equal(r.hard_counts, _reference.hard_counts(wide, labels, y_count))
    for value, kind in ((-0.25, "negative"), (np.nan, "NaN"), (0.75, "sums to")):
        bad = theta.copy()
        bad[1234, z - 1] = value
        with pytest.raises(ValueError, match=f"row 1234 .*{kind}"):
            leepfast.leep(bad, labels, n_target=y_count, backend="numba")
