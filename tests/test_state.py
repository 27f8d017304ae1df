"""The Y x Z state: a size the machine cannot hold is a clear error, not a MemoryError."""

import numpy as np
import pytest

import leepfast


def test_state_larger_than_memory_is_a_clear_error():
    theta = np.full((2, 1000), 1e-3)
    with pytest.raises(ValueError, match=r"n_target=100000000 with n_source=1000 .* "
                       r"needs a Y x Z state of .* GB, more than this machine's"):
        leepfast.leep(theta, np.array([0, 99_999_999]))


def test_compiled_finalize_equals_the_numpy_finalize():
    """The compiled end of pass 1 gives the numpy path's values: the same reductions in
    the same order (bit-identical S, H, counts, C), NCE to rounding, across the h log h
    table's edge (counts 255, 256, 257) and with a column without mass."""
    from leepfast import _api, _kernels

    rng = np.random.default_rng(3)
    n_slots, n_target, n_source = 3, 4, 9
    joint = rng.random((n_slots, n_target, n_source))
    joint[:, :, 5] = 0.0  # a source class without mass: C is 0 there
    hard = rng.integers(0, 4, (n_slots, n_target, n_source))
    hard[0, 1, 2], hard[1, 2, 3], hard[2, 3, 4] = 255, 256, 257
    hard[:, :, 6] = 0
    counts = rng.integers(1, 50, (n_slots, n_target))
    before = [a.copy() for a in (joint, hard, counts)]
    S, H, K, C, M, nce = _kernels.finalize(joint, hard, counts)
    for a, b in zip((joint, hard, counts), before, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs untouched
    np.testing.assert_array_equal(S, joint.sum(axis=0))
    np.testing.assert_array_equal(H, hard.sum(axis=0))
    np.testing.assert_array_equal(K, counts.sum(axis=0))
    np.testing.assert_array_equal(M, S.sum(axis=0))
    np.testing.assert_array_equal(C, _api.conditional_of(S))
    assert np.all(C[:, 5] == 0.0)
    assert nce == pytest.approx(_api.nce_of(H), rel=1e-14)
    from leepfast import _reference

    assert nce == pytest.approx(_reference.nce_from_counts(H), rel=1e-13)


def test_compiled_finalize_checks_shapes():
    from leepfast import _kernels

    joint = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="disagree in shape"):
        _kernels.finalize(joint, np.zeros((2, 3, 5), dtype=np.int64),
                          np.zeros((2, 3), dtype=np.int64))
