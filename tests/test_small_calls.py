"""The fixed cost of a call (DESIGN section 5): the fast paths taken by small calls give
exactly what the full paths give, and a block too small for a team of threads gives the
very values a team gives."""

import inspect

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import leepfast
from leepfast._errors import ShapeError
from leepfast._options import takes_arguments_of

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
        TypeError, match=r"^predictions: expected a float16, float32, float64 or"
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
