"""The fixed cost of a call (DESIGN section 5): the fast paths taken by small calls give
exactly what the full paths give, and a block too small for a team of threads gives the
very values a team gives."""

import inspect

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import leepfast
from leepfast._errors import (
    LabelError,
    NegativeValueError,
    NonFiniteError,
    RowSumError,
    ShapeError,
)
from leepfast._options import takes_arguments_of
from leepfast._tensors import BFLOAT16

# ---------------------------------------------------------------------------------------
# Argument binding without inspect


def _template(a, b, *, c=1, d=None):
    """A template of positional and keyword-only parameters."""


@takes_arguments_of(_template)
def _bound(**arguments) -> dict:
    return arguments


def _by_inspect(*args, **kwargs):
    call = inspect.signature(_template).bind(*args, **kwargs)
    call.apply_defaults()
    return dict(call.arguments)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((1, 2), {}),
        ((1,), {"b": 2}),
        ((), {"b": 2, "a": 1}),
        ((1, 2), {"d": 4}),
        ((1, 2), {"d": 4, "c": 3}),
        ((1,), {"b": 2, "c": 3}),
    ],
)
def test_binding_gives_what_inspect_gives(args, kwargs):
    got = _bound(*args, **kwargs)
    want = _by_inspect(*args, **kwargs)
    assert got == want
    assert list(got) == list(want)  # in the template's order, defaults filled in


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((1,), {}),  # missing b
        ((), {}),
        ((1, 2, 3), {}),  # c is keyword-only
        ((1, 2), {"e": 5}),
        ((1, 2), {"a": 1}),  # a twice
        ((1,), {"a": 1, "b": 2}),
    ],
)
def test_a_wrong_call_is_inspects_typeerror_naming_the_function(args, kwargs):
    with pytest.raises(TypeError) as want:
        _by_inspect(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        _bound(*args, **kwargs)
    assert str(got.value) == f"_bound() {want.value}"


def test_public_functions_bind_positional_and_keyword_calls():
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(5), 30)
    labels = rng.integers(0, 3, 30)
    want = leepfast.leep(theta, labels)
    assert leepfast.leep(predictions=theta, labels=labels) == want
    assert leepfast.leep(theta, labels=labels, n_target=3, n_threads=1) == want
    with pytest.raises(TypeError, match=r"^leep\(\) missing a required argument"):
        leepfast.leep(theta)
    with pytest.raises(TypeError, match=r"^leep\(\) got an unexpected keyword"):
        leepfast.leep(theta, labels, n_trheads=1)


# ---------------------------------------------------------------------------------------
# Small blocks run on the calling thread; larger ones on the team: the same values


def _data(n, z, y, dtype=np.float32, logits=False, seed=3):
    rng = np.random.default_rng(seed)
    if logits:
        theta = rng.normal(size=(n, z)).astype(dtype)
    else:
        theta = rng.dirichlet(np.ones(z), n).astype(dtype)
    return theta, rng.integers(0, y, n)


def _kernel_passes(theta, labels, y, slots, team, logits=False):
    """Pass 1 into ``slots`` slots and pass 2 by the compiled kernels, with a team of
    ``team`` threads (one when the block is below the team's threshold)."""
    kernels = pytest.importorskip("leepfast._kernels")
    z = theta.shape[1]
    labels = labels.astype(np.int64)
    joint = np.zeros((slots, y, z))
    hard = np.zeros((slots, y, z), dtype=np.int64)
    counts = np.zeros((slots, y), dtype=np.int64)
    status, _ = kernels.accumulate(theta, labels, joint, hard, counts, logits, 1e-4, team)
    assert status == 0
    joint_sum, hard_sum, class_counts, conditional, _, nce = kernels.finalize(
        joint, hard, counts
    )
    status, _, total = kernels.score(theta, labels, conditional, logits, 1e-4, team)
    assert status == 0
    return joint_sum.copy(), hard_sum.copy(), conditional.copy(), nce, total


@pytest.mark.parametrize(
    "n, z, logits",
    [
        (3000, 100, False),  # 3e5 values: a team
        (1000, 100, True),  # 1e5 logits, weighed 4x: a team
        (10, 100, False),  # 1e3 values: the calling thread
        (97, 13, True),
    ],
)
@pytest.mark.parametrize("slots", [2, 3])
def test_a_team_and_one_thread_give_the_same_bits(n, z, logits, slots):
    theta, labels = _data(n, z, 7, logits=logits)
    one = _kernel_passes(theta, labels, 7, slots, 1, logits)
    for _ in range(3):
        team = _kernel_passes(theta, labels, 7, slots, slots, logits)
        for a, b in zip(one, team, strict=True):
            assert_array_equal(a, b)


@pytest.mark.parametrize("n", [10, 3000])  # below and above the team's threshold
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_thread_counts_agree_above_and_below_the_threshold(backend, n, dtype):
    theta, labels = _data(n, 100, 10, dtype=dtype)
    base = leepfast.score(theta, labels, backend=backend, n_threads=1)
    for n_threads in (2, 3):
        runs = [
            leepfast.score(theta, labels, backend=backend, n_threads=n_threads)
            for _ in range(2)
        ]
        assert runs[0].leep == runs[1].leep  # the same thread count: the same bits
        assert_array_equal(runs[0].joint, runs[1].joint)
        assert runs[0].leep == pytest.approx(base.leep, rel=1e-12)
        assert runs[0].nce == pytest.approx(base.nce, rel=1e-12)
        np.testing.assert_allclose(runs[0].joint, base.joint, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# The batch checks of the Accumulator: the fast path passes only what the full checks
# pass, and the rest still fails with the full checks' messages


def test_later_batches_are_checked_as_the_first(backend):
    rng = np.random.default_rng(5)
    theta = rng.dirichlet(np.ones(4), 20)
    labels = rng.integers(0, 3, 20)
    acc = leepfast.Accumulator(n_target=3, backend=backend)
    acc.accumulate(theta[:10], labels[:10])
    with pytest.raises(ValueError, match=r"expected 4 source classes .* got 5"):
        acc.accumulate(np.full((2, 5), 0.2), labels[:2])
    with pytest.raises(ShapeError, match=r"^predictions: expected at least one sample"):
        acc.accumulate(theta[:0], labels[:0])
    with pytest.raises(ShapeError, match=r"^labels: expected 2 labels"):
        acc.accumulate(theta[:2], labels[:3])
    with pytest.raises(
        TypeError,
        match=r"^predictions: expected a float16, float32, float64 or bfloat16 array",
    ):
        acc.accumulate(theta[:2].astype(np.int64), labels[:2])
    with pytest.raises(ShapeError, match=r"^predictions: expected a 2-D array"):
        acc.accumulate(theta[0], labels[:1])
    with pytest.raises(TypeError, match=r"^labels: got strings in a batch"):
        acc.accumulate(theta[:2], np.array(["a", "b"]))
    # accepted as the first batch would be: byte-swapped rows, float labels, lists
    swapped = theta[10:12].astype(theta.dtype.newbyteorder())
    acc.accumulate(swapped, labels[10:12].astype(np.float64))
    acc.accumulate(theta[12:20].tolist(), labels[12:20].tolist())
    acc.finalize()
    acc.score(theta[:10], labels[:10])
    acc.score(theta[10:], labels[10:])
    assert acc.result().leep == pytest.approx(
        leepfast.leep(theta, labels, n_target=3), rel=1e-12
    )


# ---------------------------------------------------------------------------------------
# One compiled call for a small block (pass 1, finalize and pass 2 in ``both_passes``):
# the very bits, statuses and messages of the calls one by one

#: The kernels' PARALLEL_MIN_VALUES: below it, a block runs on the calling thread (a
#: logit weighs LOGIT_WEIGHT = 4 values), and a whole-array call takes both_passes.
SMALL = 1 << 17


def _kind(theta, kind):
    """``theta`` as float16/32/64, or as bfloat16 bits (``_tensors.BFLOAT16``,
    truncated: rows still sum to 1 within bfloat16's tolerance)."""
    if kind == "bfloat16":
        bits = (theta.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return bits.view(BFLOAT16)
    return theta.astype(kind)


def _one_by_one(theta, labels, n_target, n_threads, logits):
    """The general path: an Accumulator fed the array as one batch, pass by pass."""
    acc = leepfast.Accumulator(
        n_target=n_target, logits=logits, backend="cython", n_threads=n_threads
    )
    acc.accumulate(theta, labels)
    acc.finalize()
    acc.score(theta, labels)
    return acc.result()


def _assert_same_result(a, b):
    assert (a.leep, a.nce) == (b.leep, b.nce)  # bit for bit
    assert (a.n_samples, a.n_source, a.n_target) == (b.n_samples, b.n_source, b.n_target)
    for name in ("joint", "marginal", "conditional", "class_counts", "hard_counts"):
        assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype


@pytest.fixture
def both_passes_calls(monkeypatch):
    """What the compiled backend's both_passes returned, call by call (None: the block
    was left to the calls one by one)."""
    cython_backend = pytest.importorskip("leepfast.backends.cython")
    calls, real = [], cython_backend.both_passes

    def spy(*args):
        out = real(*args)
        calls.append(out)
        return out

    monkeypatch.setattr(cython_backend, "both_passes", spy)
    return calls


@pytest.mark.parametrize("kind", ["float16", "float32", "float64", "bfloat16"])
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("side", ["below", "above"])  # the small threshold
def test_one_call_gives_the_bits_of_the_passes_one_by_one(
    both_passes_calls, kind, logits, n_threads, side
):
    z, y = 100, 7
    below = (SMALL - 1) // (z * (4 if logits else 1))  # rows of a small block
    n = below if side == "below" else below + 1
    theta, labels = _data(n, z, y, dtype=np.float64, logits=logits, seed=11)
    theta = _kind(theta, kind)
    got = leepfast.score(
        theta, labels, n_target=y, logits=logits, backend="cython", n_threads=n_threads
    )
    assert len(both_passes_calls) == 1
    assert (both_passes_calls[0] is not None) == (side == "below")
    _assert_same_result(got, _one_by_one(theta, labels, y, n_threads, logits))
    kw = {"n_target": y, "logits": logits, "backend": "cython", "n_threads": n_threads}
    assert leepfast.leep(theta, labels, **kw) == got.leep
    assert leepfast.nce(theta, labels, **kw) == got.nce  # pass 1 only: no both_passes
    assert len(both_passes_calls) == 2


@pytest.mark.parametrize("kind", ["float16", "float32", "float64", "bfloat16"])
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("slots", [1, 2, 3, 8])
@pytest.mark.parametrize("z, y", [(37, 5), (700, 9)])  # Y x Z under and over 4096
def test_both_passes_is_the_three_kernels(kind, logits, slots, z, y):
    kernels = pytest.importorskip("leepfast._kernels")
    from leepfast.backends.cython import _bits

    n = min(301, (SMALL - 1) // (z * (4 if logits else 1)))
    theta, labels = _data(n, z, y, dtype=np.float64, logits=logits, seed=2)
    block, labels = _bits(_kind(theta, kind)), labels.astype(np.int64)
    tol = 1e-2 if kind in ("float16", "bfloat16") else 1e-4

    def fresh():
        return (
            np.zeros((slots, y, z)),
            np.zeros((slots, y, z), dtype=np.int64),
            np.zeros((slots, y), dtype=np.int64),
        )

    status, row, finalized, total = kernels.both_passes(
        block, labels, *fresh(), logits, tol
    )
    assert (status, row) == (0, -1)
    slots_ = fresh()
    assert kernels.accumulate(block, labels, *slots_, logits, tol, slots) == (0, -1)
    want = kernels.finalize(*slots_)
    assert kernels.score(block, labels, want[3], logits, tol, slots) == (0, -1, total)
    for a, b in zip(finalized, want, strict=True):
        assert_array_equal(a, b)
    # a block worth a team is left to the three calls, nothing done
    big = np.repeat(block, SMALL // (z * (4 if logits else 1)) // n + 1, axis=0)
    joint, hard, counts = fresh()
    out = kernels.both_passes(
        big, np.resize(labels, len(big)), joint, hard, counts, logits, tol
    )
    assert out is None and not joint.any() and not hard.any() and not counts.any()


@pytest.mark.parametrize("kind", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "spoil, error, message",
    [
        (lambda t, y: t.__setitem__((3, 2), np.nan), NonFiniteError, "contains NaN"),
        (lambda t, y: t.__setitem__((3, 2), -0.25), NegativeValueError, "negative"),
        (lambda t, y: t.__setitem__((3, slice(None)), 0.5), RowSumError, "sums to"),
        (lambda t, y: y.__setitem__(3, 7), LabelError, r"row 3 is 7; expected an"),
    ],
)
def test_one_call_raises_what_the_passes_one_by_one_raise(kind, spoil, error, message):
    pytest.importorskip("leepfast._kernels")
    theta, labels = _data(40, 16, 7, dtype=np.float64)
    theta = theta.astype(np.float32)
    spoil(theta, labels)
    theta = _kind(theta, kind)
    kw = {"n_target": 7, "backend": "cython", "n_threads": 2}
    with pytest.raises(error, match=message) as one_call:
        leepfast.leep(theta, labels, **kw)
    with pytest.raises(error) as blocks:  # two blocks: the passes one by one
        leepfast.leep(theta, labels, block_size=39, **kw)
    with pytest.raises(error) as accumulator:
        _one_by_one(theta, labels, 7, 2, False)
    assert str(one_call.value) == str(blocks.value) == str(accumulator.value)
    assert one_call.value.argument == blocks.value.argument


def test_one_call_for_every_kind_of_labels_and_what():
    pytest.importorskip("leepfast._kernels")
    pd = pytest.importorskip("pandas")
    theta, labels = _data(50, 12, 4, dtype=np.float32, seed=8)
    names = np.array(["ant", "bee", "cat", "dog"])[labels]
    base = _one_by_one(theta, labels, None, 2, False)
    kw = {"backend": "cython", "n_threads": 2}
    for given in (
        labels,
        labels.astype(np.uint8),
        labels.astype(np.int16)[::-1][::-1],  # a strided view
        labels.astype(np.float64),  # integer-valued floats
        labels.tolist(),
    ):
        _assert_same_result(leepfast.score(theta, given, **kw), base)
        _assert_same_result(leepfast.score(theta, given, n_target=4, **kw), base)
        assert leepfast.leep(theta, given, **kw) == base.leep
        assert leepfast.nce(theta, given, **kw) == base.nce
    for strings in (names, names.astype(object), pd.Series(names, dtype="category")):
        got = leepfast.score(theta, strings, **kw)
        _assert_same_result(got, base)
        assert got.classes == ("ant", "bee", "cat", "dog")
        assert leepfast.leep(theta, strings, **kw) == base.leep
    # a larger n_target than the labels show: empty classes, the same bits both ways
    _assert_same_result(
        leepfast.score(theta, labels, n_target=9, **kw),
        _one_by_one(theta, labels, 9, 2, False),
    )


def test_one_call_leaves_its_inputs_as_they_were():
    pytest.importorskip("leepfast._kernels")
    theta, labels = _data(30, 20, 5, dtype=np.float32)
    theta_before, labels_before = theta.copy(), labels.copy()
    theta.flags.writeable = labels.flags.writeable = False  # a write would raise
    result = leepfast.score(theta, labels, backend="cython", n_threads=2)
    assert_array_equal(theta, theta_before)
    assert_array_equal(labels, labels_before)
    assert not np.shares_memory(result.joint, theta)
