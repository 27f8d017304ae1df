"""The public API: the two-pass Accumulator, Result, backend choice, configuration."""

import copy
import io
import os
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import leepfast
from leepfast import _config, _driver, _reference
from leepfast import backends as _backends

# a RuntimeWarning (overflow, invalid value) in the code under test is a failure
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

RTOL = 1e-12


def assert_same_result(a, b, rtol=RTOL):
    assert a.leep == pytest.approx(b.leep, rel=rtol)
    assert a.nce == pytest.approx(b.nce, rel=rtol)
    for name in ("joint", "marginal", "conditional"):
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=0, err_msg=name)
    assert_array_equal(a.class_counts, b.class_counts)
    assert_array_equal(a.hard_counts, b.hard_counts)
    assert (a.n_samples, a.n_source, a.n_target) == (b.n_samples, b.n_source, b.n_target)


def batches(theta, y, bounds):
    """The batches (theta[a:b], y[a:b]) between consecutive bounds."""
    return [(theta[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@pytest.fixture
def data(make_theta, make_labels):
    rng = np.random.default_rng(31)
    theta = make_theta(rng, 523, 9, zeros=0.2)
    y = make_labels(rng, 523, 5)
    return theta, y


# ---------------------------------------------------------------------------------------
# Accumulator


def test_accumulator_two_passes_equal_score(backend, data):
    theta, y = data
    parts = batches(theta, y, [0, 1, 100, 101, 350, 523])
    acc = leepfast.Accumulator(n_target=5, backend=backend, n_threads=2)
    for t, labels in parts:
        assert acc.accumulate(t, labels) is acc
    assert acc.finalize() is acc
    for t, labels in reversed(parts):  # pass 2 in any order
        acc.score(t, labels)
    result = acc.result()
    expected = leepfast.score(theta, y, backend=backend)
    assert_same_result(result, expected)
    assert result.backend == backend
    assert result.leep == pytest.approx(_reference.leep(theta, y), rel=RTOL)


def test_accumulator_with_logits(backend, data):
    theta, y = data
    logits = np.log(theta + 1e-3) + 2.5
    acc = leepfast.Accumulator(logits=True, backend=backend)
    for t, labels in batches(logits, y, [0, 200, 523]):
        acc.accumulate(t, labels)
    acc.finalize()
    for t, labels in batches(logits, y, [0, 200, 523]):
        acc.score(t, labels)
    probs = _reference.softmax(logits)
    assert acc.result().leep == pytest.approx(_reference.leep(probs, y), rel=RTOL)
    assert acc.result().nce == pytest.approx(_reference.nce(probs, y), rel=RTOL)


def test_accumulator_merge_in_both_passes(backend, data):
    theta, y = data
    first, second = batches(theta, y, [0, 300, 523])
    one = leepfast.Accumulator(backend=backend, n_threads=3)
    one.accumulate(*first).accumulate(*second).finalize()
    one.score(*first).score(*second)

    left = leepfast.Accumulator(backend=backend, n_threads=2)
    right = leepfast.Accumulator(backend=backend, n_threads=1)
    left.accumulate(*first)
    right.accumulate(*second)
    assert left.merge(right) is left
    left.finalize()
    other = copy.deepcopy(left)  # a second worker for pass 2
    left.score(*first)
    other.score(*second)
    left.merge(other)
    assert_same_result(left.result(), one.result())
    assert left.n_samples == left.n_scored == 523


def test_merge_with_an_empty_accumulator_changes_nothing(backend, data):
    theta, y = data
    acc = leepfast.Accumulator(backend=backend).accumulate(theta, y)
    acc.merge(leepfast.Accumulator(backend=backend))
    empty = leepfast.Accumulator(backend=backend).merge(acc)
    acc.finalize().score(theta, y)
    empty.finalize().score(theta, y)
    assert_same_result(acc.result(), leepfast.score(theta, y, backend=backend))
    assert_same_result(empty.result(), acc.result())


def test_n_target_grows_across_batches(backend, make_theta):
    rng = np.random.default_rng(32)
    theta = make_theta(rng, 90, 4)
    y = np.concatenate(
        [rng.integers(0, 2, 30), rng.integers(0, 6, 30), rng.integers(0, 3, 30)]
    )
    y[40] = 6  # max label 6 appears only in the second batch
    parts = batches(theta, y, [0, 30, 60, 90])
    acc = leepfast.Accumulator(backend=backend, n_threads=2)
    for t, labels in parts:
        acc.accumulate(t, labels)
    acc.finalize()
    assert acc.n_target == 7
    for t, labels in parts:
        acc.score(t, labels)
    result = acc.result()
    assert result.n_target == 7 and result.joint.shape == (7, 4)
    assert_same_result(result, leepfast.score(theta, y, backend=backend))
    # merging states of different sizes grows the smaller one
    a = leepfast.Accumulator(backend=backend).accumulate(*parts[0])
    b = leepfast.Accumulator(backend=backend).accumulate(*parts[1])
    a.merge(b).accumulate(*parts[2]).finalize()
    assert a.n_target == 7
    for t, labels in parts:
        a.score(t, labels)
    assert_same_result(a.result(), result)


def test_accumulator_misuse(backend, data):
    theta, y = data
    acc = leepfast.Accumulator(n_target=5, backend=backend)
    with pytest.raises(RuntimeError, match=r"score: call finalize\(\) after pass 1 first"):
        acc.score(theta, y)
    with pytest.raises(RuntimeError, match="result: run pass 1, finalize"):
        acc.result()
    with pytest.raises(ValueError, match=r"finalize: no rows were accumulated"):
        leepfast.Accumulator(backend=backend).finalize()
    for wrong in (0, 3, True, "1", None):
        with pytest.raises(ValueError, match=r"^step: pass_ must be 1 or 2, got "):
            acc.step(wrong, _driver.Block(theta, y, 0))
    assert acc.n_samples == 0
    acc.accumulate(theta, y)
    with pytest.raises(ValueError, match="predictions: expected 9 source classes .*got 4"):
        acc.accumulate(theta[:, :4], y)
    acc.finalize()
    with pytest.raises(RuntimeError, match=r"accumulate: pass 1 is over"):
        acc.accumulate(theta, y)
    with pytest.raises(RuntimeError, match="finalize: already called"):
        acc.finalize()
    with pytest.raises(TypeError, match="merge: expected an Accumulator, got int"):
        acc.merge(3)
    with pytest.raises(ValueError, match="merge: states must be in the same pass"):
        acc.merge(leepfast.Accumulator(backend=backend).accumulate(theta, y))


def test_pass_two_must_see_the_rows_of_pass_one(backend, data):
    theta, y = data
    acc = leepfast.Accumulator(backend=backend)
    acc.accumulate(theta, y).finalize()
    acc.score(theta[:500], y[:500])  # rows 500.. never scored
    with pytest.raises(
        ValueError,
        match=r"result: pass 2 saw 500 rows with class counts "
        r"\[.*\], pass 1 saw 523 .*both passes must see the same rows",
    ):
        acc.result()
    # different rows with the same class counts can not be told apart by counts alone,
    # but a row without mass under the conditional is caught by the kernel
    acc = leepfast.Accumulator(backend=backend)
    acc.accumulate(np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]]), [0, 1]).finalize()
    with pytest.raises(
        ValueError,
        match=r"predictions: row 1 has no mass under the "
        r"conditional of pass 1; pass 2 must see the same rows",
    ):
        acc.score(np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]), [0, 1])


def test_pass_two_merge_from_different_data_is_refused(backend, data):
    theta, y = data
    a = leepfast.Accumulator(backend=backend).accumulate(theta, y).finalize()
    b = leepfast.Accumulator(backend=backend).accumulate(theta[:300], y[:300]).finalize()
    with pytest.raises(ValueError, match="pass-2 states were finalized from different"):
        a.merge(b)


# ---------------------------------------------------------------------------------------
# Result and the in-memory functions


def test_result_fields(backend, data):
    theta, y = data
    r = leepfast.score(theta.astype(np.float32), y, n_target=7, backend=backend)
    assert isinstance(r, leepfast.Result)
    assert isinstance(r.leep, float) and isinstance(r.nce, float)
    assert (r.n_samples, r.n_source, r.n_target) == (523, 9, 7)
    assert r.joint.shape == r.conditional.shape == r.hard_counts.shape == (7, 9)
    assert r.marginal.shape == (9,) and r.class_counts.shape == (7,)
    assert r.joint.dtype == r.conditional.dtype == r.marginal.dtype == np.float64
    assert r.class_counts.dtype == r.hard_counts.dtype == np.int64
    total = theta.astype(np.float32).sum(dtype=np.float64)
    assert r.joint.sum() == pytest.approx(total / 523, rel=1e-12)
    assert_allclose(r.marginal, r.joint.sum(axis=0), rtol=1e-15)
    assert r.hard_counts.sum() == 523
    assert_array_equal(r.hard_counts.sum(axis=1), r.class_counts)
    text = repr(r)
    assert text.startswith(f"Result(leep={r.leep:.6g}, nce={r.nce:.6g}, n_samples=523")
    assert f"backend={backend!r}" in text


def test_array_likes_are_accepted(backend):
    theta = [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]]
    expected = _reference.leep(np.array(theta), np.array([0, 1, 1]))
    assert leepfast.leep(theta, (0, 1, 1), backend=backend) == pytest.approx(
        expected, rel=RTOL
    )


# ---------------------------------------------------------------------------------------
# Backends, threads, configuration


def test_available_backends_and_auto():
    available = leepfast.available_backends()
    assert available == [b for b in ("cython", "numba", "numpy") if b in available]
    assert "numpy" in available
    theta = np.array([[0.25, 0.75], [0.5, 0.5]])
    assert leepfast.score(theta, [0, 1]).backend == available[0]
    assert leepfast.Accumulator().backend == available[0]


def test_missing_backend_says_what_is_installed(monkeypatch):
    real = _backends._importable
    monkeypatch.setattr(_backends, "_importable", lambda name: name == "numpy")
    with pytest.raises(
        ImportError,
        match=r"backend='numba' is not available \(numba is "
        r"not installed: .*\); available backends: numpy$",
    ):
        leepfast.leep([[1.0]], [0], backend="numba")
    with pytest.raises(
        ImportError,
        match=r"backend='cython' is not available \(the "
        r"compiled extension .*\); available backends: numpy$",
    ):
        leepfast.Accumulator(backend="cython")
    # auto falls back, and says once what is missing
    monkeypatch.setattr(_backends, "_WARNED", [])
    with pytest.warns(
        RuntimeWarning,
        match=r"found only the NumPy backend.*missing: "
        r"cython \(the compiled extension .*numba \(numba is not",
    ):
        assert leepfast.score([[1.0]], [0]).backend == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert leepfast.score([[1.0]], [0]).backend == "numpy"  # once
    monkeypatch.setattr(_backends, "_importable", real)


def test_thread_count_resolution(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _config.default_threads() == 3
    assert leepfast.Accumulator(backend="numpy").n_threads == 3
    assert leepfast.Accumulator(backend="numpy", n_threads=-1).n_threads == 3
    assert leepfast.Accumulator(backend="numpy", n_threads=np.int32(2)).n_threads == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _config.default_threads() == len(os.sched_getaffinity(0))


def test_show_config():
    out = io.StringIO()
    leepfast.show_config(file=out)
    text = out.getvalue()
    assert f"leepfast        {leepfast.__version__}" in text
    available = leepfast.available_backends()
    assert f"backends        {', '.join(available)} (auto picks the first)" in text
    if "cython" in available:
        from leepfast import _kernels

        state = "on" if _kernels.openmp_enabled() else "off (serial build)"
        assert f"cython OpenMP   {state}" in text
    else:
        assert "cython OpenMP   n/a (not built)" in text
    assert f"default threads {_config.default_threads()}" in text


def test_importing_leepfast_does_not_import_numba(tmp_path, python_c):
    script = (
        "import sys, leepfast\n"
        "leepfast.available_backends(); leepfast.show_config(file=open('/dev/null', 'w'))\n"
        "leepfast.leep([[0.5, 0.5], [1.0, 0.0]], [0, 1], backend='numpy')\n"
        "print(leepfast.__file__)\n"
        "print('numba' in sys.modules, 'llvmlite' in sys.modules)\n"
    )
    # run outside the source tree, so the installed package is the one imported
    proc = python_c(script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    path, flags = proc.stdout.splitlines()
    assert os.path.realpath(path) == os.path.realpath(leepfast.__file__)
    assert flags == "False False"


def test_labels_as_strings_categoricals_and_integer_valued_floats(
    backend, rng, make_theta, tmp_path
):
    # strings are numbered in sorted order (Result.classes says which is which);
    # integer-valued floats (pandas, np.loadtxt) are integers; the input is untouched
    import pandas as pd

    theta = make_theta(rng, 600, 7)
    y = rng.integers(0, 3, 600)
    names = np.array(["zebra", "ant", "mole"])  # sorted: ant, mole, zebra
    strings = names[y]
    codes = np.searchsorted(np.sort(names), strings)
    want = leepfast.score(theta, codes, backend=backend)
    kept = strings.copy()
    for labels in (
        strings,
        list(strings),
        strings.astype(object),
        pd.Series(strings),
        pd.Categorical(strings),
        pd.Series(strings, dtype="category"),
    ):
        got = leepfast.score(theta, labels, backend=backend)
        assert got.classes == ("ant", "mole", "zebra")
        assert (got.leep, got.nce) == (want.leep, want.nce)
        np.testing.assert_array_equal(got.joint, want.joint)
        assert leepfast.leep(theta, labels, backend=backend) == want.leep
    assert np.array_equal(strings, kept)
    np.save(tmp_path / "theta.npy", theta)
    from_file = leepfast.score_files(tmp_path / "theta.npy", strings, backend=backend)
    assert from_file.classes == (
        "ant",
        "mole",
        "zebra",
    ) and from_file.leep == pytest.approx(want.leep, rel=1e-12)
    assert leepfast.open_labels(strings).classes == ("ant", "mole", "zebra")
    assert want.classes is None and "classes" not in want.to_dict()
    for floats in (y.astype(np.float64), y.astype(np.float32), pd.Series(y.astype(float))):
        assert leepfast.leep(theta, floats, backend=backend) == leepfast.leep(
            theta, y, backend=backend
        )
    # a batch's strings would be numbered by that batch alone: refused
    with pytest.raises(TypeError, match=r"^labels: got strings in a batch; strings are"):
        leepfast.Accumulator(backend=backend).accumulate(theta, strings)
    with pytest.raises(TypeError, match=r"^labels: got strings in a batch"):
        leepfast.Scorer(backend=backend).add(theta, strings)
    # the feature scores and rank take the whole label set: strings as their codes
    f = rng.normal(size=(600, 4))
    assert leepfast.logme(f, strings) == leepfast.logme(f, codes)
    assert leepfast.gbc(f, strings) == leepfast.gbc(f, codes)
    assert leepfast.rank({"m": theta}, strings).rows[0]["leep"] == pytest.approx(
        want.leep, rel=1e-12
    )


def test_a_float_label_in_a_batch_is_named_by_its_row(backend, rng, make_theta):
    theta = make_theta(rng, 50, 4)
    y = rng.integers(0, 3, 50).astype(float)
    acc = leepfast.Accumulator(n_target=3, backend=backend).accumulate(theta[:20], y[:20])
    y[27] = 1.25
    with pytest.raises(leepfast.LabelError) as err:
        acc.accumulate(theta[20:], y[20:], row_offset=20)
    assert str(err.value) == (
        "labels: row 47 is 1.25; expected an integer label (integer-valued floats are "
        "taken)"
    )
