"""bfloat16 read as its bits by the kernels (a shift to float32, exact) at every SIMD
level this CPU has, by every backend, from arrays, tensors, safetensors files and a
feed-once Scorer's spill, without a float32 copy of the data.

bfloat16 arrays are ``leepfast._tensors.BFLOAT16`` views (uint16 marked by the dtype's
metadata); ``bfloat16_of`` rounds floats to them as PyTorch does. The reference is the
NumPy reference over the widened values (float64)."""

import os
import tracemalloc

import numpy as np
import pytest

import leepfast
from leepfast import _reference
from leepfast._errors import NegativeValueError, NonFiniteError, RowSumError
from leepfast._tensors import BFLOAT16, bfloat16_of, is_bfloat16, widen_bfloat16

_kernels = pytest.importorskip("leepfast._kernels")
from leepfast._config import SIMD_LEVELS  # noqa: E402
from leepfast.backends import cython as _backend_cython  # noqa: E402

LEVELS = SIMD_LEVELS[: _kernels.simd_level() + 1]
#: widths around every vector width (8 floats a step at AVX2, tails, small rows)
WIDTHS = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000]


def probabilities(rng, n, z):
    theta = rng.random((n, z)) ** 3
    theta[rng.random((n, z)) < 0.3] = 0.0
    theta[np.arange(n), rng.integers(0, z, n)] += 0.5
    return bfloat16_of(theta / theta.sum(axis=1, keepdims=True))


def wide(bits):
    """The values of bfloat16 bits, in float64 (signalling NaNs quietly)."""
    with np.errstate(invalid="ignore"):
        return widen_bfloat16(bits).astype(np.float64)


def test_rounding_and_widening():
    # by hand: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (ties to even: 1), just
    # above it rounds up; 3.0 and 2^-133 (subnormal) are exact
    x = np.array([1.0, 1 + 2**-8, 1 + 2**-8 + 2**-20, 3.0, 2.0**-133, -0.0, np.inf])
    bits = bfloat16_of(x)
    assert is_bfloat16(bits.dtype) and bits.dtype == np.uint16
    assert bits.view(np.uint16).tolist() == [
        0x3F80,
        0x3F80,
        0x3F81,
        0x4040,
        0x0001,  # the smallest subnormal: 2^-126 * 2^-7
        0x8000,
        0x7F80,
    ]
    np.testing.assert_array_equal(wide(bits), [1, 1, 1 + 2**-7, 3, 2.0**-133, -0.0, np.inf])
    assert np.isnan(wide(bfloat16_of([np.nan])))[0]


def test_a_plain_uint16_array_is_not_taken_for_bfloat16():
    theta = probabilities(np.random.default_rng(0), 20, 4)
    with pytest.raises(
        TypeError,
        match=r"^predictions: expected a float16, float32, float64 or bfloat16 array, "
        r"got dtype=uint16$",
    ):
        leepfast.leep(theta.view(np.uint16), np.arange(20) % 3)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("z", WIDTHS)
def test_every_level_and_width_agrees_with_the_reference(
    monkeypatch, level, logits, z, matches_reference
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    n, y_count = 700, 5
    labels = rng.integers(0, y_count, n)
    x = bfloat16_of(rng.normal(size=(n, z)) * 3) if logits else probabilities(rng, n, z)
    probs = _reference.softmax(wide(x)) if logits else wide(x)
    for backend in leepfast.available_backends():
        r = leepfast.score(
            x,
            labels,
            n_target=y_count,
            logits=logits,
            backend=backend,
            n_threads=2,
            block_size=97,
        )
        matches_reference(r, probs, labels, y_count)
        np.testing.assert_allclose(
            r.joint, _reference.joint(probs, labels, y_count), rtol=1e-12, atol=1e-300
        )
    # the compiled kernels read the bits as the float32 rows they stand for (logits:
    # float32 probability rows would miss float32's row-sum tolerance)
    if logits:
        as_f32 = leepfast.score(widen_bfloat16(x), labels, logits=True, backend="cython")
        got = leepfast.score(x, labels, logits=True, backend="cython")
        assert got.leep == pytest.approx(as_f32.leep, rel=1e-14)
        np.testing.assert_array_equal(got.hard_counts, as_f32.hard_counts)


@pytest.mark.parametrize("level", LEVELS)
def test_every_bfloat16_probability_is_converted_exactly(monkeypatch, level):
    # every bfloat16 in [0, 1] (subnormals and zeros included) once, as the first value
    # of a row [p, 1 - p], each in its own class; eight of them a row for the vector
    # part; a conversion off by one bit moves a joint row
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    every = np.arange(0x3F81, dtype=np.uint16).view(BFLOAT16)  # +0 .. 1.0
    p = wide(every)
    rows = bfloat16_of(np.stack([p, 1 - p], axis=1))
    labels = np.arange(len(rows)) % 4096
    r = leepfast.score(rows, labels, n_target=4096, backend="cython")
    np.testing.assert_allclose(
        r.joint, _reference.joint(wide(rows), labels, 4096), rtol=1e-14, atol=1e-300
    )
    assert r.leep == pytest.approx(_reference.leep(wide(rows), labels, 4096), rel=1e-13)
    eights = bfloat16_of(np.sort(p)[-16000:].reshape(-1, 8) / 8)  # sums near 1/8..1
    eights = bfloat16_of(wide(eights) / wide(eights).sum(axis=1, keepdims=True))
    labels = np.arange(len(eights)) % 512
    r = leepfast.score(eights, labels, n_target=512, backend="cython")
    np.testing.assert_allclose(
        r.joint, _reference.joint(wide(eights), labels, 512), rtol=1e-14, atol=1e-300
    )


@pytest.mark.parametrize("level", LEVELS)
def test_every_finite_bfloat16_logit_is_converted_exactly(monkeypatch, level):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(BFLOAT16)
    h = wide(every)
    keep = np.isfinite(h)
    bits, h = every[keep], h[keep]
    zero = np.zeros(len(h), np.uint16).view(BFLOAT16)
    x = np.stack([bits, zero, bfloat16_of(-h)], axis=1).view(BFLOAT16)  # stack drops it
    labels = np.arange(len(x)) % 4096
    probs = _reference.softmax(wide(x))
    r = leepfast.score(x, labels, n_target=4096, logits=True, backend="cython")
    np.testing.assert_allclose(
        r.joint, _reference.joint(probs, labels, 4096), rtol=1e-14, atol=1e-300
    )
    for bad in (np.inf, np.nan):  # and the non-finite ones are refused
        y = x.copy()
        y[777, 0] = bfloat16_of([bad])[0]
        with pytest.raises(NonFiniteError, match="row 777 contains NaN or \\+inf"):
            leepfast.leep(y, labels, logits=True, backend="cython")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("z", [5, 16, 33, 1000])
@pytest.mark.parametrize("column", [0, 7, 8, 15, 16, -1])  # vector part and tail
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.nan, NonFiniteError, "contains NaN or infinity"),
        (np.inf, NonFiniteError, "contains NaN or infinity"),
        (-0.25, NegativeValueError, r"contains a negative value \(-0.25\)"),
        (
            "sum",
            RowSumError,
            r"sums to 1.\d+; expected .* within 0.01 \(the bfloat16 tolerance\)",
        ),
    ],
)
def test_bad_rows_are_reported_by_both_passes(
    monkeypatch, level, z, column, bad, error, match
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    theta = probabilities(rng, 300, z)
    labels = rng.integers(0, 3, 300)
    values = wide(theta)
    col = column % z
    values[123, col] = values[123, col] + 0.5 if bad == "sum" else bad
    changed = bfloat16_of(values)
    for backend in leepfast.available_backends():
        with pytest.raises(error, match=f"row 123 {match}"):
            leepfast.leep(changed, labels, backend=backend)
    # pass 2 over rows changed after pass 1: the status and row pass 1 would report
    slots = (
        np.zeros((1, 3, z)),
        np.zeros((1, 3, z), dtype=np.int64),
        np.zeros((1, 3), dtype=np.int64),
    )
    assert _backend_cython.accumulate(theta, labels, *slots, False, 1e-2, 1) == (0, -1)
    cond = _backend_cython.finalize(*slots)[3]
    status = {NonFiniteError: 4, NegativeValueError: 5, RowSumError: 6}[error]
    assert _backend_cython.score(changed, labels, cond, False, 1e-2, 2)[:2] == (
        status,
        123,
    )


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("z", [12, 40, 100])
def test_argmax_ties_take_the_lowest_index_in_every_lane(monkeypatch, level, z):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    pairs = [(a, b) for a in range(z) for b in range(a + 1, z)]
    theta = np.zeros((len(pairs), z))
    for i, (a, b) in enumerate(pairs):
        theta[i, [a, b]] = 0.5
    labels = np.arange(len(pairs)) % 3
    bits = bfloat16_of(theta)
    for backend in leepfast.available_backends():
        r = leepfast.score(bits, labels, n_target=3, backend=backend)
        np.testing.assert_array_equal(
            r.hard_counts, _reference.hard_counts(theta, labels, 3)
        )


def _peak(call):
    """Peak bytes NumPy allocated during ``call()`` (tracemalloc sees them exactly)."""
    call()  # first use: imports, caches
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_tensors_are_read_in_place_without_a_float32_copy(torch):
    rng = np.random.default_rng(3)
    n, z = 20_000, 100
    theta = wide(probabilities(rng, n, z))
    labels = rng.integers(0, 10, n)
    t = torch.from_numpy(theta).to(torch.bfloat16)
    from leepfast._api import check_predictions

    bits = check_predictions(t)
    assert is_bfloat16(bits.dtype)
    assert np.shares_memory(bits, np.from_dlpack(t.view(torch.int16)))
    expected = _reference.leep(t.float().numpy().astype(np.float64), labels)
    assert leepfast.leep(t, labels) == pytest.approx(expected, rel=1e-12)
    # the float32 widening the kernels no longer need: 8 MB; the call now allocates
    # the Y x Z state and small arrays only
    peak = _peak(lambda: leepfast.score(t, labels, backend="cython"))
    assert peak < 1 << 20, peak


def test_ml_dtypes_arrays_are_read_in_place_without_a_float32_copy():
    """JAX's bfloat16 is ml_dtypes' NumPy extension dtype: its bits are viewed, not
    widened, and rounded by ml_dtypes as bfloat16_of rounds (to nearest even)."""
    import ml_dtypes  # in the test extra

    rng = np.random.default_rng(4)
    n, z = 20_000, 100
    theta = wide(probabilities(rng, n, z))
    labels = rng.integers(0, 10, n)
    values = theta.astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(
        values.view(np.uint16), bfloat16_of(theta).view(np.uint16)
    )
    from leepfast._api import check_predictions

    bits = check_predictions(values)
    assert is_bfloat16(bits.dtype)
    assert np.shares_memory(bits, values)
    widened = values.astype(np.float64)
    assert leepfast.leep(values, labels) == pytest.approx(
        _reference.leep(widened, labels), rel=1e-12
    )
    logits = (rng.standard_normal((n, z)) * 4).astype(ml_dtypes.bfloat16)
    assert leepfast.leep(logits, labels, logits=True) == pytest.approx(
        _reference.leep(_reference.softmax(logits.astype(np.float64)), labels), rel=1e-12
    )
    peak = _peak(lambda: leepfast.score(values, labels, backend="cython"))
    assert peak < 1 << 20, peak
    with pytest.raises(RowSumError):  # the bfloat16 row-sum tolerance, not float32's
        leepfast.leep((theta * 1.05).astype(ml_dtypes.bfloat16), labels)


def test_safetensors_bf16_blocks_are_views_of_the_file(tmp_path):
    from leepfast import open_predictions, score_files

    rng = np.random.default_rng(4)
    bits = probabilities(rng, 5000, 64)
    labels = rng.integers(0, 5, 5000)
    header = b'{"p":{"dtype":"BF16","shape":[5000,64],"data_offsets":[0,%d]}}' % (
        bits.nbytes
    )
    header += b" " * (-len(header) % 8)
    path = tmp_path / "p.safetensors"
    path.write_bytes(
        len(header).to_bytes(8, "little") + header + bits.view(np.uint16).tobytes()
    )
    with open_predictions(path) as preds:
        f = preds.files[0]
        assert f.stored == "bfloat16" and f.nbytes == bits.nbytes
        for _, _, start, block in preds.blocks(block_size=1000):
            assert is_bfloat16(block.dtype)
            assert np.shares_memory(block, f.array)  # a view of the map, no copy
            np.testing.assert_array_equal(block, bits[start : start + len(block)])
    got = score_files(path, labels)
    assert got.leep == leepfast.leep(bits, labels)
    assert got.leep == pytest.approx(_reference.leep(wide(bits), labels), rel=1e-12)


def test_a_scorer_spills_bfloat16_as_two_bytes_a_value(tmp_path):
    rng = np.random.default_rng(5)
    bits = probabilities(rng, 4000, 50)
    labels = rng.integers(0, 4, 4000).astype(np.int64)
    scorer = leepfast.Scorer(spill_dir=tmp_path, memory_budget=0)
    for i in range(0, 4000, 500):
        scorer.add(bits[i : i + 500], labels[i : i + 500])
    size = os.fstat(scorer._spill.file.fileno()).st_size
    assert size == bits.nbytes + labels.nbytes  # 2 bytes a value, not float32's 4
    got = scorer.result()
    assert got.leep == pytest.approx(_reference.leep(wide(bits), labels), rel=1e-12)
    assert got.leep == leepfast.leep(bits, labels)


def test_dask_arrays_of_bfloat16_keep_the_mark():
    da = pytest.importorskip("dask.array")
    import leepfast.dask

    rng = np.random.default_rng(6)
    bits = probabilities(rng, 3000, 20)
    labels = rng.integers(0, 4, 3000)
    d = da.from_array(bits, chunks=(700, 20))
    assert is_bfloat16(d.dtype)
    got = leepfast.dask.score(d, da.from_array(labels, chunks=700))
    want = leepfast.score(bits, labels)
    assert got.leep == pytest.approx(want.leep, rel=1e-13)
    assert got.nce == pytest.approx(want.nce, rel=1e-13)
    assert want.leep == pytest.approx(_reference.leep(wide(bits), labels), rel=1e-12)
