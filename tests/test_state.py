"""The Y x Z state: a size the machine cannot hold is a clear error, not a MemoryError."""

import numpy as np
import pytest

import leepfast


def test_state_larger_than_memory_is_a_clear_error():
    theta = np.full((2, 1000), 1e-3)
    with pytest.raises(
        ValueError,
        match=r"n_target=100000000 with n_source=1000 .* "
        r"needs a Y x Z state of .* GB, more than this machine's",
    ):
        leepfast.leep(theta, np.array([0, 99_999_999]))


def test_compiled_finalize_equals_the_numpy_finalize():
    """The compiled end of pass 1 gives the numpy path's values: the same reductions in
    the same order (bit-identical S, H, counts, C), NCE to rounding, across the h log h
    table's edge (counts 255, 256, 257) and with a column without mass."""
    from leepfast import _kernels
    from leepfast.backends import numpy as numpy_backend

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
    ref = numpy_backend.finalize(*before)
    joint0, hard0, counts0 = before
    np.testing.assert_array_equal(S, joint0.sum(axis=0))
    np.testing.assert_array_equal(H, hard0.sum(axis=0))
    np.testing.assert_array_equal(K, counts0.sum(axis=0))
    np.testing.assert_array_equal(M, S.sum(axis=0))
    np.testing.assert_array_equal(C, ref[3])
    assert np.all(C[:, 5] == 0.0)
    assert nce == pytest.approx(ref[5], rel=1e-14)
    from leepfast import _reference

    assert nce == pytest.approx(_reference.nce_from_counts(H), rel=1e-13)
    # in place: the results live in the slots (no other Y x Z array is made)
    assert np.shares_memory(S, joint[0]) and np.shares_memory(C, joint[1])
    assert np.shares_memory(H, hard[0]) and np.shares_memory(K, counts[0])
    # one slot: C needs an array of its own
    one = _kernels.finalize(joint0[:1].copy(), hard0[:1].copy(), counts0[:1].copy())
    ref1 = numpy_backend.finalize(joint0[:1], hard0[:1], counts0[:1])
    np.testing.assert_array_equal(one[3], ref1[3])
    assert one[5] == pytest.approx(ref1[5], rel=1e-14)


def test_extra_memory_of_a_large_state_stays_within_the_contract(tmp_path):
    """DESIGN.md section 5: at most 64 MiB + 2 x threads x Y x Z x 8 bytes beyond the
    input, for Y x Z large enough that the state dominates (here 2 threads, 80 MB per
    Y x Z float64 array): the finalize works in the slots' memory, and leep() forms no
    Result arrays."""
    script = tmp_path / "peak.py"
    script.write_text(
        "import numpy as np, leepfast\n"
        "def hwm():  # this process's peak resident memory (ru_maxrss survives exec)\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "n, z, y = 400, 20000, 500\n"
        "rng = np.random.default_rng(0)\n"
        "theta = rng.random((n, z), dtype=np.float32)\n"
        "theta /= theta.sum(axis=1, keepdims=True)\n"
        "labels = np.arange(n) % y\n"
        "base = hwm()\n"
        "v = leepfast.leep(theta, labels, n_target=y, backend='cython', n_threads=2)\n"
        "peak = hwm()\n"
        "print(peak - base, 64 * 2**20 + 2 * 2 * y * z * 8, v)\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.split()
    extra, budget, value = int(out[0]), int(out[1]), float(out[2])
    assert np.isfinite(value) and value < 0
    assert extra <= budget, f"extra {extra / 2**20:.0f} MiB > {budget / 2**20:.0f} MiB"
    # and the measurement sees the state (4 arrays of 2 slots, not all pages touched)
    assert extra >= 2 * 500 * 20000 * 8, extra


def test_compiled_finalize_checks_shapes():
    from leepfast import _kernels

    joint = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="disagree in shape"):
        _kernels.finalize(
            joint, np.zeros((2, 3, 5), dtype=np.int64), np.zeros((2, 3), dtype=np.int64)
        )


def test_a_stray_large_label_is_announced_and_a_given_n_target_named(monkeypatch):
    # issue 13 item 9: one stray label 200000 was scored silently with a 6.1 GB state,
    # and an absurd n_target given was reported as "is 999999999999 meant to be a label?"
    import warnings

    import leepfast
    from leepfast import _state

    monkeypatch.setattr(_state, "STATE_WARN_BYTES", 1 << 20)  # the same path, cheaper
    p = np.full((4, 100), 0.01)
    y = np.array([0, 1, 0, 1])
    y_stray = np.array([0, 1, 2000, 1])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = leepfast.leep(p, y_stray, backend="numpy", n_threads=1)
    need = 16 * 3 * 2001 * 100
    assert [str(w.message) for w in seen] == [
        f"labels: the largest label, 2000, makes n_target=2001 and a Y x Z state of "
        f"{need / 1e9:.3g} GB with n_source=100; pass n_target=2001 to confirm it, or "
        f"check the labels"
    ]
    assert seen[0].filename == __file__  # the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given: nothing to announce
        assert leepfast.leep(p, y_stray, n_target=2001, backend="numpy") == got
        leepfast.leep(p, y, backend="numpy")  # small: nothing to announce
    with pytest.raises(leepfast.StateSizeError) as err:
        leepfast.leep(p, y, n_target=10**12, backend="numpy", n_threads=1)
    assert err.value.argument == "n_target"
    assert str(err.value).endswith("; check n_target, or pass fewer n_threads")
    assert "meant to be a label" not in str(err.value)
