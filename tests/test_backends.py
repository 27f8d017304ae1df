"""Every backend against the NumPy reference, on every kind of input it accepts.

The reference (``leepfast._reference``) is evaluated on the same values upcast to
float64, so a backend must agree with it to rounding (rtol 1e-12; the kernels accumulate
in float64) whatever the input dtype, memory layout, byte order or block size.
"""

import importlib
import importlib.machinery
import os
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import leepfast
from leepfast import _reference

# a RuntimeWarning (overflow, invalid value) in the code under test is a failure
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

RTOL = 1e-12
# LEEP of a one-class target (Y = 1) is log(row sum) ~ 1e-16: no relative tolerance
# means anything there; this absolute one is still 100x below any real difference.
ATOL = 1e-14
DTYPES = (np.float16, np.float32, np.float64)


def reference(theta, labels, n_target=None, logits=False):
    """The reference's answer for the same values, upcast to float64."""
    values = np.array(theta, dtype=np.float64)  # same values, native, contiguous
    labels = np.array(labels, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # extreme logits
        probs = _reference.softmax(values) if logits else values
    if n_target is None:
        n_target = int(labels.max()) + 1
    J = _reference.joint(probs, labels, n_target)
    return {
        "leep": _reference.leep(probs, labels, n_target),
        "nce": _reference.nce(probs, labels, n_target),
        "joint": J,
        "marginal": _reference.marginal(J),
        "conditional": _reference.conditional(J),
        "class_counts": np.bincount(labels, minlength=n_target),
        "hard_counts": _reference.hard_counts(probs, labels, n_target),
        "n_samples": len(labels),
        "n_source": values.shape[1],
        "n_target": n_target,
    }


def assert_agrees(result, expected, rtol=RTOL):
    assert result.leep == pytest.approx(expected["leep"], rel=rtol, abs=ATOL)
    assert result.nce == pytest.approx(expected["nce"], rel=rtol, abs=ATOL)
    for name in ("joint", "marginal", "conditional"):
        assert_allclose(
            getattr(result, name), expected[name], rtol=rtol, atol=0, err_msg=name
        )
    assert_array_equal(result.class_counts, expected["class_counts"])
    assert_array_equal(result.hard_counts, expected["hard_counts"])
    for name in ("n_samples", "n_source", "n_target"):
        assert getattr(result, name) == expected[name], name


def check(theta, labels, backend, **kwargs):
    """score() with this backend equals the reference on the same values."""
    result = leepfast.score(theta, labels, backend=backend, **kwargs)
    expected = reference(theta, labels, kwargs.get("n_target"), kwargs.get("logits", False))
    assert_agrees(result, expected)
    assert result.backend == backend
    assert leepfast.leep(theta, labels, backend=backend, **kwargs) == result.leep
    assert leepfast.nce(theta, labels, backend=backend, **kwargs) == result.nce
    return result


def logits_of(rng, n, n_source, dtype):
    return (rng.normal(size=(n, n_source)) * 4 + 10).astype(dtype)


# ---------------------------------------------------------------------------------------
# Required backends really are there


def test_required_backends_are_available_and_import():
    raw = os.environ.get("LEEPFAST_REQUIRE_BACKENDS", "")
    required = [b.strip() for b in raw.split(",") if b.strip()]
    if not required:
        pytest.skip("LEEPFAST_REQUIRE_BACKENDS is not set (CI sets it to cython,numba)")
    unknown = sorted(set(required) - {"cython", "numba", "numpy"})
    assert not unknown, f"LEEPFAST_REQUIRE_BACKENDS names unknown backends {unknown}"
    available = leepfast.available_backends()
    for name in required:
        assert name in available, f"required backend {name!r} missing; have {available}"
        if name == "cython":
            kernels = importlib.import_module("leepfast._kernels")
            # a compiled module inside the imported package, not a source tree without it
            assert kernels.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
            assert os.path.dirname(kernels.__file__) == os.path.dirname(leepfast.__file__)
            assert isinstance(kernels.openmp_enabled(), bool)
        if name == "numba":
            importlib.import_module("numba")
            importlib.import_module("leepfast.backends.numba")
        theta = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
        assert leepfast.leep(theta, [0, 1, 1], backend=name) == pytest.approx(
            _reference.leep(theta, [0, 1, 1]), rel=RTOL
        )


# ---------------------------------------------------------------------------------------
# Generated inputs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_dtypes_and_memory_order(backend, make_theta, make_labels, dtype, order):
    rng = np.random.default_rng(1)
    theta = np.asarray(make_theta(rng, 257, 11, dtype, zeros=0.2), order=order)
    y = make_labels(rng, 257, 6)
    assert theta.flags.f_contiguous == (order == "F")
    check(theta, y, backend, block_size=50, n_threads=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits(backend, make_labels, dtype):
    rng = np.random.default_rng(2)
    theta = logits_of(rng, 300, 9, dtype)
    y = make_labels(rng, 300, 4)
    check(theta, y, backend, logits=True, block_size=64, n_threads=2)
    check(np.asfortranarray(theta[::-1]), y, backend, logits=True, block_size=64)
    # small integer logits: many tied maxima, the argmax must be the lowest index
    ties = rng.integers(0, 3, size=(300, 5)).astype(dtype)
    check(ties, y, backend, logits=True, block_size=64, n_threads=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_slices(backend, make_theta, make_labels, dtype):
    rng = np.random.default_rng(3)
    n, n_source = 101, 7
    theta = make_theta(rng, n, n_source, dtype)
    # the parent's other entries are NaN: reading one of them would fail validation
    parent = np.full((2 * n, 3 * n_source), np.nan, dtype=dtype)
    parent[::2, ::3] = theta
    view = parent[::2, ::3]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    y_parent = np.full(3 * n, -1)
    y_parent[::3] = make_labels(rng, n, 5)
    check(view, y_parent[::3], backend, block_size=16, n_threads=2)
    check(view[::-1], y_parent[::3][::-1], backend, block_size=16)  # negative strides


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_arrays(backend, make_theta, make_labels, dtype):
    rng = np.random.default_rng(4)
    theta = make_theta(rng, 120, 5, dtype)
    y = make_labels(rng, 120, 3)
    theta.flags.writeable = False
    y.flags.writeable = False
    check(theta, y, backend, block_size=32)
    check(theta[::2], y[::2], backend, block_size=32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_memory_maps(backend, make_theta, make_labels, tmp_path, dtype):
    rng = np.random.default_rng(5)
    theta = make_theta(rng, 333, 6, dtype)
    y = make_labels(rng, 333, 4, dtype=np.int32)
    np.save(tmp_path / "theta.npy", theta)
    np.save(tmp_path / "y.npy", y)
    mapped = np.load(tmp_path / "theta.npy", mmap_mode="r")
    mapped_y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    check(mapped, mapped_y, backend, block_size=100)
    # a raw file mapped with np.memmap, Fortran order and big-endian
    raw = np.asfortranarray(theta).astype(theta.dtype.newbyteorder(">"))
    raw.T.tofile(tmp_path / "theta.f.be")  # column-major bytes
    fmapped = np.memmap(
        tmp_path / "theta.f.be", dtype=raw.dtype, mode="r", shape=theta.shape, order="F"
    )
    assert_array_equal(fmapped, theta)
    check(fmapped, y, backend, block_size=100)
    del mapped, mapped_y, fmapped


@pytest.mark.parametrize("dtype", DTYPES)
def test_byte_swapped(backend, make_theta, make_labels, dtype):
    rng = np.random.default_rng(6)
    theta = make_theta(rng, 200, 8, dtype)
    y = make_labels(rng, 200, 5)
    swapped = theta.astype(theta.dtype.newbyteorder("S"))
    swapped_y = y.astype(y.dtype.newbyteorder("S"))
    assert not swapped.dtype.isnative and not swapped_y.dtype.isnative
    result = check(swapped, swapped_y, backend, block_size=64)
    native = leepfast.score(theta, y, backend=backend, block_size=64)
    assert result.leep == native.leep and result.nce == native.nce
    check(swapped, swapped_y, backend, logits=True)


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_sizes_around_the_block_size(backend, make_theta, make_labels, n, n_threads):
    rng = np.random.default_rng(n)
    theta = make_theta(rng, n, 4, zeros=0.3)
    y = make_labels(rng, n, 3)
    check(theta, y, backend, block_size=16, n_threads=n_threads, n_target=3)
    check(theta, y, backend, block_size=16, n_threads=n_threads)
    check(theta.astype(np.float32), y, backend, block_size=16, n_threads=n_threads)


@pytest.mark.parametrize("n", [15, 16, 17, 31, 32, 33, 100])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_counts_around_the_increment_lag(backend, make_theta, make_labels, n, dtype):
    # the C core increments each row's pair count 16 rows late (LF_HARD_LAG) and flushes
    # at the end of a call: few cells, so the pending ones repeat
    rng = np.random.default_rng(n)
    theta = make_theta(rng, n, 5, zeros=0.3).astype(dtype)
    y = make_labels(rng, n, 2)
    check(theta, y, backend, n_threads=1)
    check(theta, y, backend, n_threads=2, block_size=n // 2 + 1)
    check(rng.normal(size=(n, 5)).astype(dtype), y, backend, n_threads=1, logits=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_source_class_and_one_target_class(backend, make_theta, make_labels, dtype):
    rng = np.random.default_rng(8)
    check(np.ones((50, 1), dtype=dtype), make_labels(rng, 50, 4), backend, block_size=7)
    check(
        make_theta(rng, 50, 6, dtype), np.zeros(50, dtype=np.uint8), backend, block_size=7
    )
    check(np.ones((50, 1), dtype=dtype), np.zeros(50, dtype=np.int16), backend)
    check(logits_of(rng, 50, 1, dtype), make_labels(rng, 50, 3), backend, logits=True)


def test_float16_subnormals_and_negative_zeros(backend, make_labels):
    rng = np.random.default_rng(15)
    n, n_source = 400, 6
    bits = rng.integers(1, 0x0400, size=(n, n_source)).astype(np.uint16)
    theta = bits.view(np.float16).copy()  # positive subnormals, 2^-24 .. 2^-14
    theta[:, 1] = -0.0
    theta[:, 0] = (1.0 - theta.astype(np.float64).sum(axis=1)).astype(np.float16)
    check(theta, make_labels(rng, n, 3), backend, block_size=77, n_threads=2)


def test_extreme_logits(backend):
    big = np.finfo(np.float64).max
    x = np.array(
        [[big, -big, 0.0], [-big, -big, -big], [5.0, 5.0, 5.0], [0.0, 800.0, -1.0]]
    )
    check(x, [0, 1, 1, 0], backend, logits=True)
    x16 = np.array([[65504, -65504, 0], [1, 1, 1], [-65504, 0, 0]], dtype=np.float16)
    check(x16, [0, 1, 1], backend, logits=True)


@pytest.mark.parametrize(
    "label_dtype",
    [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64],
)
def test_label_dtypes(backend, make_theta, make_labels, label_dtype):
    rng = np.random.default_rng(9)
    theta = make_theta(rng, 90, 5)
    y = make_labels(rng, 90, 7, dtype=label_dtype)
    check(theta, y, backend, block_size=40)
    check(theta, y, backend, n_target=9)


def test_absent_classes_and_zero_mass_columns(backend, make_theta, make_labels):
    rng = np.random.default_rng(10)
    theta = make_theta(rng, 400, 12, zeros=0.5)
    theta[:, [0, 5, 11]] = 0.0  # source classes without mass
    theta[:, 1] += 0.1  # no row left without mass
    theta /= theta.sum(axis=1, keepdims=True)
    y = make_labels(rng, 400, 6) * 2  # odd classes absent; 12 and 13 absent too
    result = check(theta, y, backend, n_target=14, block_size=33, n_threads=2)
    assert np.isfinite(result.leep)
    assert not result.conditional[:, [0, 5, 11]].any()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 80),
    n_source=st.integers(1, 9),
    n_target=st.integers(1, 6),
    dtype=st.sampled_from(DTYPES),
    order=st.sampled_from(["C", "F"]),
    logits=st.booleans(),
    extra_classes=st.integers(0, 2),
    block_size=st.one_of(st.none(), st.integers(1, 40)),
    n_threads=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_backend_equals_reference(
    backend,
    make_theta,
    make_labels,
    n,
    n_source,
    n_target,
    dtype,
    order,
    logits,
    extra_classes,
    block_size,
    n_threads,
    seed,
):
    rng = np.random.default_rng(seed)
    if logits:
        theta = logits_of(rng, n, n_source, dtype)
    else:
        theta = make_theta(rng, n, n_source, dtype, zeros=rng.choice([0.0, 0.4]))
    theta = np.asarray(theta, order=order)
    y = make_labels(rng, n, n_target)
    check(
        theta,
        y,
        backend,
        logits=logits,
        n_target=int(y.max()) + 1 + extra_classes,
        block_size=block_size,
        n_threads=n_threads,
    )


# ---------------------------------------------------------------------------------------
# Block size, thread count, determinism


def test_independent_of_block_size_and_thread_count(backend, make_theta, make_labels):
    rng = np.random.default_rng(11)
    theta = make_theta(rng, 997, 13, zeros=0.2)
    y = make_labels(rng, 997, 7)
    base = leepfast.score(theta, y, backend=backend, block_size=997, n_threads=1)
    assert_agrees(base, reference(theta, y))
    for block_size in (None, 41, 97, 101, 1):
        for n_threads in (1, 2, 3):
            r = leepfast.score(
                theta, y, backend=backend, block_size=block_size, n_threads=n_threads
            )
            where = f"block_size={block_size}, n_threads={n_threads}"
            assert r.leep == pytest.approx(base.leep, rel=1e-12), where
            assert r.nce == pytest.approx(base.nce, rel=1e-12), where
            assert_allclose(r.joint, base.joint, rtol=1e-12, err_msg=where)
            assert_allclose(r.conditional, base.conditional, rtol=1e-12, err_msg=where)
            assert_array_equal(r.hard_counts, base.hard_counts, err_msg=where)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_same_settings_are_bit_identical(backend, make_theta, make_labels, n_threads):
    rng = np.random.default_rng(12)
    theta = make_theta(rng, 997, 13).astype(np.float32)
    y = make_labels(rng, 997, 7)
    runs = [
        leepfast.score(theta, y, backend=backend, block_size=101, n_threads=n_threads)
        for _ in range(3)
    ]
    for r in runs[1:]:
        assert r.leep == runs[0].leep
        assert r.nce == runs[0].nce
        assert_array_equal(r.joint, runs[0].joint)
        assert_array_equal(r.conditional, runs[0].conditional)


def test_many_python_threads_at_once(backend, make_theta, make_labels):
    rng = np.random.default_rng(13)
    cases = []
    for k in range(16):
        dtype = DTYPES[k % 3]
        theta = make_theta(rng, 600 + 37 * k, 3 + k % 5, dtype)
        cases.append((theta, make_labels(rng, len(theta), 2 + k % 4)))
    expected = [reference(theta, y)["leep"] for theta, y in cases]

    def run(case):
        theta, y = case
        return leepfast.leep(theta, y, backend=backend, block_size=128, n_threads=2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(run, cases * 3))
    for k, value in enumerate(got):
        assert value == pytest.approx(expected[k % len(cases)], rel=RTOL), k


def test_numba_workqueue_layer_survives_concurrent_calls(tmp_path, python_c):
    # Numba's workqueue threading layer aborts the process when two Python threads enter
    # parallel code at once; the backend must serialise its calls under that layer.
    pytest.importorskip("numba")
    script = textwrap.dedent(
        """
        from concurrent.futures import ThreadPoolExecutor
        import numpy as np
        import numba
        import leepfast
        from leepfast import _reference
        rng = np.random.default_rng(0)
        cases = []
        for k in range(8):
            theta = rng.dirichlet(np.ones(5), size=2000)
            cases.append((theta, rng.integers(0, 3, 2000)))
        run = lambda c: leepfast.leep(*c, backend="numba", block_size=300, n_threads=2)
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(run, cases * 4))
        want = [_reference.leep(*c) for c in cases * 4]
        assert np.allclose(got, want, rtol=1e-12, atol=0), (got, want)
        print(numba.threading_layer())
        """
    )
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = python_c(script, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["workqueue"]


# ---------------------------------------------------------------------------------------
# Inputs are never modified


def _snapshot(a):
    return a.tobytes(order="A"), a.flags.writeable, a.dtype, a.shape, a.strides


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("logits", [False, True])
def test_inputs_are_not_modified(backend, make_theta, make_labels, dtype, logits):
    rng = np.random.default_rng(14)
    if logits:
        theta = logits_of(rng, 150, 6, dtype)
    else:
        theta = make_theta(rng, 150, 6, dtype)
    y = make_labels(rng, 150, 4, dtype=np.int32)
    inputs = [theta, np.asfortranarray(theta), theta.astype(theta.dtype.newbyteorder("S"))]
    for arr in inputs:
        before, before_y = _snapshot(arr), _snapshot(y)
        leepfast.score(arr, y, backend=backend, logits=logits, block_size=40)
        acc = leepfast.Accumulator(logits=logits, backend=backend)
        acc.accumulate(arr, y).finalize()
        acc.score(arr, y).result()
        assert _snapshot(arr) == before
        assert _snapshot(y) == before_y
    # a failing call leaves its input alone too
    bad = theta.copy()
    bad[77, 2] = np.nan
    before = _snapshot(bad)
    with pytest.raises(ValueError, match="row 77"):
        leepfast.score(bad, y, backend=backend, logits=logits, block_size=40)
    assert _snapshot(bad) == before


def test_numba_portable_half_conversion_is_exact():
    # The numba kernels convert float16 in their row loops: by LLVM's conversion when
    # Numba targets a CPU with F16C (checked on every pattern through _prepare in
    # test_simd.py), else by a branch-free bit-level function, checked here directly.
    numba = pytest.importorskip("numba")
    nb = pytest.importorskip("leepfast.backends.numba")

    @numba.njit
    def convert(bits, out):
        for i in range(bits.shape[0]):
            out[i] = nb._half_value_bits(bits[i])

    bits = np.arange(1 << 16, dtype=np.uint16)
    got = np.empty(bits.shape)
    convert(bits, got)
    want = bits.view(np.float16).astype(np.float64)
    nan = np.isnan(want)
    assert nan.sum() == 2 * 1023  # every NaN pattern, both signs
    assert_array_equal(got.view(np.uint64)[~nan], want.view(np.uint64)[~nan])
    assert np.isnan(got[nan]).all()
