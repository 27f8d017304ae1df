"""The compiled backend's SIMD table under every level this CPU has (the LEEPFAST_SIMD
cap, read per call), pass-2 validation, absurd thread counts, fork after use, and NCE
summed carefully. Each test fails on the main branch before the ccore work."""

import math
import multiprocessing
import os

import numpy as np
import pytest

import leepfast
from leepfast import _reference

_kernels = pytest.importorskip("leepfast._kernels")
from leepfast._config import SIMD_LEVELS, max_threads, resolve_threads, simd_cap  # noqa: E402
from leepfast.backends import cython as _backend_cython  # noqa: E402

#: every level this CPU runs (a capped AVX-512 CPU stands in for the lower ones)
LEVELS = SIMD_LEVELS[: _kernels.simd_level() + 1]


def rows(rng, n, z, dtype):
    theta = rng.random((n, z)) ** 3
    theta[rng.random((n, z)) < 0.3] = 0.0
    theta[np.arange(n), rng.integers(0, z, n)] += 0.5
    return (theta / theta.sum(axis=1, keepdims=True)).astype(dtype)


def test_every_level_below_the_best_is_available():
    assert "scalar" in LEVELS and _kernels.simd() == LEVELS[-1]
    for i in range(len(SIMD_LEVELS)):
        assert _kernels.simd_effective(i) == min(i, _kernels.simd_level())


@pytest.mark.parametrize("level", LEVELS)
def test_cap_is_read_per_call_and_shown(monkeypatch, level):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    assert SIMD_LEVELS[simd_cap()] == level
    from leepfast._config import config

    info = config()
    assert info["simd_cap"] == level and info["simd_in_use"] == level


def test_invalid_cap_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("LEEPFAST_SIMD", "avx3")
    theta = rows(np.random.default_rng(0), 20, 5, np.float32)
    with pytest.raises(
        ValueError,
        match=r"LEEPFAST_SIMD: expected one of avx512, avx2, "
        r"sse2, scalar \(or unset\), got 'avx3'",
    ):
        leepfast.leep(theta, np.zeros(20, dtype=int), backend="cython")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("z", [3, 16, 17, 33, 100, 1000])
def test_every_level_agrees_with_the_reference(
    monkeypatch, level, dtype, logits, z, matches_reference
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    n, y_count = 4100, 5  # > 64 rows per class: the float16 fixed-point pass may run
    labels = rng.integers(0, y_count, n)
    x = (rng.normal(size=(n, z)) * 3).astype(dtype) if logits else rows(rng, n, z, dtype)
    probs = _reference.softmax(x) if logits else x.astype(np.float64)
    r = leepfast.score(
        x, labels, n_target=y_count, logits=logits, backend="cython", n_threads=2
    )
    matches_reference(r, probs, labels, y_count)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", [5, 40, 1000])
@pytest.mark.parametrize("bad, status", [(np.nan, 4), (-0.25, 5), (0.5, 6)])
def test_pass_two_validates_rows_as_pass_one(monkeypatch, level, dtype, z, bad, status):
    # rows changed between the passes: pass 2 reports pass 1's status and row
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(1)
    theta = rows(rng, 300, z, dtype)
    labels = rng.integers(0, 3, 300)
    tol = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-6}[dtype]
    slots = (
        np.zeros((1, 3, z)),
        np.zeros((1, 3, z), dtype=np.int64),
        np.zeros((1, 3), dtype=np.int64),
    )
    assert _backend_cython.accumulate(theta, labels, *slots, False, tol, 1) == (0, -1)
    cond = _backend_cython.finalize(*slots)[3]
    changed = theta.copy()
    changed[123, z // 2] = changed[123, z // 2] + bad if bad == 0.5 else bad
    fresh = (
        np.zeros((1, 3, z)),
        np.zeros((1, 3, z), dtype=np.int64),
        np.zeros((1, 3), dtype=np.int64),
    )
    assert _backend_cython.accumulate(changed, labels, *fresh, False, tol, 1) == (
        status,
        123,
    )
    got = _backend_cython.score(changed, labels, cond, False, tol, 2)
    assert got[:2] == (status, 123)
    assert _backend_cython.score(theta, labels, cond, False, tol, 2)[0] == 0


def test_pass_two_of_an_accumulator_fed_other_rows_raises():
    rng = np.random.default_rng(2)
    theta = rows(rng, 200, 10, np.float32)
    labels = rng.integers(0, 4, 200)
    acc = leepfast.Accumulator(backend="cython", n_threads=2)
    acc.accumulate(theta, labels)
    acc.finalize()
    other = theta.copy()
    other[57] *= 3.0  # sums to 3: never a probability row
    with pytest.raises(ValueError, match="row 57"):
        acc.score(other, labels)


SCORE = """
    import numpy as np, leepfast
    from leepfast import _reference
    rng = np.random.default_rng(0)
    theta = rng.random((3000, 20)); theta /= theta.sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, 3000)
    r = leepfast.leep(theta, y, backend="cython"{threads})
    assert abs(r - _reference.leep(theta, y, 4)) <= 1e-12 * abs(r), r
    print("ok")
"""


@pytest.mark.parametrize("threads", [2000, 40000, 100000])
def test_absurd_thread_counts_are_clamped(threads, python_c):
    assert resolve_threads(threads) == max_threads()
    out = python_c(SCORE.format(threads=f", n_threads={threads}"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_absurd_omp_num_threads_is_clamped(python_c):
    out = python_c(SCORE.format(threads=""), env=dict(os.environ, OMP_NUM_THREADS="100000"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def _child_leep(args):
    theta, y = args
    return leepfast.leep(theta, y, backend="cython", n_threads=2)


def test_a_child_forked_after_use_computes_the_right_value():
    rng = np.random.default_rng(3)
    theta = rows(rng, 5000, 50, np.float64)
    y = rng.integers(0, 5, 5000)
    expected = leepfast.leep(theta, y, backend="cython", n_threads=2)  # OpenMP used
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        result = pool.map_async(_child_leep, [(theta, y)] * 3)
        values = result.get(timeout=120)  # a regression hangs: this fails instead
    assert values == [pytest.approx(expected, rel=1e-12)] * 3
    assert expected == pytest.approx(_reference.leep(theta, y, 5), rel=1e-12)


def test_nce_is_summed_carefully():
    # nearly deterministic columns: sum H log H - sum H_z log H_z cancels, and summed
    # naively was 6.8e-12 relative off; the exact value from math.fsum of the terms
    rng = np.random.default_rng(1)
    Y, Z = 100, 1000
    hard = rng.integers(0, 3000, (Y, Z)) * (rng.random((Y, Z)) < 0.2)
    hard[0, :] += 1 + rng.integers(0, 5_000_000, Z)
    hard = hard.astype(np.int64)
    hz, n = hard.sum(axis=0), hard.sum()
    exact = (
        math.fsum(
            float(v) * math.log(v / hz[z]) for (_, z), v in np.ndenumerate(hard) if v > 0
        )
        / n
    )
    slots = (
        np.ones((2, Y, Z)),
        np.stack([hard, np.zeros_like(hard)]),
        np.ones((2, Y), dtype=np.int64),
    )
    nce = _backend_cython.finalize(*slots)[5]
    assert abs(nce - exact) <= 1e-14 * abs(exact)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("scale", [1.0, 30.0, 300.0])
def test_vectorised_exp_matches_the_float64_reference(monkeypatch, level, dtype, scale):
    # logits of large magnitude (exp underflows to subnormals and 0 across a row),
    # float16 input (scale 300 saturates float16 only where it must: 65504 is finite),
    # -inf entries (masked classes: probability 0), in the vector part and the tail of
    # rows, and a class masked in every row (no mass: its column of C is 0)
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(int(scale))
    n, z, y_count = 3000, 257, 7
    x = (rng.normal(size=(n, z)) * scale).astype(dtype)
    x[::5, 3] = -700.0 if dtype != "float16" else -60000.0  # deep in the exp tail
    x[1::7, 5:40:3] = -np.inf
    x[2::11, z - 3 :] = -np.inf
    x[:, 11] = -np.inf
    labels = rng.integers(0, y_count, n)
    probs = _reference.softmax(x)
    for backend in ("cython", "numba", "numpy"):
        if backend not in leepfast.available_backends():
            continue
        r = leepfast.score(
            x, labels, n_target=y_count, logits=True, backend=backend, n_threads=2
        )
        assert r.leep == pytest.approx(_reference.leep(probs, labels, y_count), rel=1e-13)
        np.testing.assert_allclose(
            r.joint, _reference.joint(probs, labels, y_count), rtol=1e-13, atol=1e-300
        )
        assert r.nce == pytest.approx(_reference.nce(probs, labels, y_count), rel=1e-13)


@pytest.mark.parametrize("level", LEVELS)
def test_every_float16_is_converted_exactly(monkeypatch, level):
    # each finite half once, as the first logit of a row [h, 0, -h] (levels without
    # F16C convert halves by bit operations: subnormals, zeros of both signs, the
    # largest values), each in its own class: a wrong conversion moves its joint row
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    h = every[np.isfinite(every)]
    small = np.sort(h[np.abs(h) <= 16])  # 8 to a row: the vector part of a conversion
    small = small[: len(small) // 8 * 8].reshape(-1, 8)
    for rows in (
        np.stack([h, np.zeros_like(h), -h], axis=1),  # one value of a row's tail
        np.hstack([small, np.zeros((len(small), 1), np.float16)]),
    ):
        labels = np.arange(len(rows)) % 4096
        probs = _reference.softmax(rows.astype(np.float64))
        r = leepfast.score(rows, labels, n_target=4096, logits=True, backend="cython")
        expected = _reference.joint(probs, labels, 4096)
        np.testing.assert_allclose(r.joint, expected, rtol=1e-14)
    x = np.stack([h, np.zeros_like(h), -h], axis=1)
    labels = np.arange(len(h)) % 4096
    for bad in (np.inf, -np.inf, np.nan):  # and the non-finite ones are refused
        x[777, 0] = bad
        x[777, 1:] = -np.inf if bad == -np.inf else 0.0  # -inf alone: only -inf
        with pytest.raises(ValueError, match="row 777 contains NaN or \\+inf, or no"):
            leepfast.leep(x, labels, logits=True, backend="cython")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_at_the_edge_of_the_fast_exp_match_the_reference(monkeypatch, level, dtype):
    # a row whose values span at most 707 takes the exp without clamp or subnormal
    # scaling (where the level has one), a wider row the careful one: rows on both
    # sides of the edge, their smallest value in the vector part and in the tail
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(11)
    n, z, y_count = 400, 45, 5
    x = rng.normal(size=(n, z)) * 2
    spans = np.array([700.0, 706.9, 707.0, 707.1, 708.0, 745.0, 800.0])
    for i in range(n):
        x[i, (i * 7) % z] = x[i].max() - spans[i % len(spans)]
    x = x.astype(dtype)
    labels = rng.integers(0, y_count, n)
    probs = _reference.softmax(x)
    for backend in ("cython", "numba"):  # the numba backend has a fast exp of its own
        if backend not in leepfast.available_backends():
            continue
        r = leepfast.score(x, labels, n_target=y_count, logits=True, backend=backend)
        assert r.leep == pytest.approx(_reference.leep(probs, labels, y_count), rel=1e-13)
        np.testing.assert_allclose(
            r.joint, _reference.joint(probs, labels, y_count), rtol=1e-13, atol=1e-300
        )
        assert r.nce == pytest.approx(_reference.nce(probs, labels, y_count), rel=1e-13)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, "only -inf"])
@pytest.mark.parametrize("column", [0, 17, 39])  # first, vector part, scalar tail
def test_nan_plus_inf_and_rows_of_minus_inf_are_reported_at_every_level(
    monkeypatch, level, bad, column
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    x = np.random.default_rng(0).normal(size=(50, 39 + 1))
    x[30, :] = -np.inf  # a finite logit left in row 30: valid
    x[30, column] = 0.5
    if bad == "only -inf":
        x[31, :] = -np.inf
    else:
        x[31, column] = bad
    for logits in (x, x.astype(np.float32), x.astype(np.float16)):
        with pytest.raises(ValueError, match="row 31 contains NaN or \\+inf, or no value"):
            leepfast.leep(logits, np.arange(50) % 3, logits=True, backend="cython")
