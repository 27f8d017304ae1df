"""Tensors (DLPack, __array__), labels of every common kind, bfloat16, device tensors.

The tests that take the ``torch`` fixture (conftest) are skipped where torch is absent,
except when LEEPFAST_REQUIRE_TORCH is set (CI sets it and installs torch==2.13.0, the CPU
build)."""

import numpy as np
import pytest

import leepfast
from leepfast._errors import InputError, RowSumError
from leepfast._tensors import widen_bfloat16


def _data(n=500, z=9, y=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(z), n), rng.integers(0, y, n)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_torch_tensors_score_like_their_arrays(backend, dtype, torch):
    theta, y = _data()
    arr = theta.astype(dtype)
    t = torch.from_numpy(arr)
    got = leepfast.score(t, torch.from_numpy(y), backend=backend)
    want = leepfast.score(arr, y, backend=backend)
    assert got.leep == want.leep and got.nce == want.nce  # the same bits went in
    from leepfast._api import check_predictions

    assert np.shares_memory(check_predictions(t), arr)  # zero-copy through DLPack


def test_a_non_contiguous_tensor_and_logits(torch):
    theta, y = _data()
    logits = torch.from_numpy(np.log(theta)).T.contiguous().T  # Fortran order
    assert not logits.is_contiguous()
    assert leepfast.leep(logits, y, logits=True) == pytest.approx(
        leepfast.leep(theta, y), rel=1e-12
    )


def test_bfloat16_agrees_with_the_reference_on_the_widened_values(backend, torch):
    theta, y = _data()
    t = torch.from_numpy(theta).to(torch.bfloat16)
    widened = t.to(torch.float32).numpy().astype(np.float64)
    np.testing.assert_array_equal(
        widen_bfloat16(t.view(torch.int16).numpy().view(np.uint16)), widened
    )
    from leepfast import _reference

    # the rows of a bfloat16 tensor sum to 1 only within ~2^-8: bfloat16's tolerance
    got = leepfast.score(t, y, backend=backend)
    assert got.leep == pytest.approx(_reference.leep(widened, y), rel=1e-12)
    assert got.nce == pytest.approx(_reference.nce(widened, y), rel=1e-12)
    bad = t.clone()
    bad[3] = bad[3] * 1.5
    with pytest.raises(
        RowSumError,
        match=r"row 3 sums to .*within 0.01 \(the bfloat16 "
        r"tolerance\)",
    ):
        leepfast.leep(bad, y, backend=backend)
    acc = leepfast.Accumulator(backend=backend).accumulate(t, y).finalize()
    assert acc.score(t, y).result().leep == pytest.approx(got.leep, rel=1e-12)


def test_bfloat16_tensors_as_features_in_a_scorer_and_as_models_in_rank(torch):
    # bfloat16 features were read with np.asarray (torch has no NumPy bfloat16: a
    # TypeError), and so were rank's models; both now go through DLPack like predictions
    theta, y = _data()
    t = torch.from_numpy(theta).to(torch.bfloat16)
    widened = t.to(torch.float32).numpy()
    # the mark keeps bfloat16's tolerance: these rows miss float32's (1e-4)
    assert np.abs(widened.astype(np.float64).sum(1) - 1).max() > 1e-4
    rng = np.random.default_rng(1)
    feats = torch.from_numpy(rng.normal(size=(len(y), 6))).to(torch.bfloat16)
    f32 = feats.to(torch.float32).numpy()
    assert leepfast.h_score(feats, y) == leepfast.h_score(f32, y)
    assert leepfast.logme(feats, y) == leepfast.logme(f32, y)
    scorer = leepfast.Scorer(features=True)
    for i in range(0, len(y), 128):
        scorer.add(t[i : i + 128], y[i : i + 128], features=feats[i : i + 128])
    got = scorer.result()
    assert got.leep == pytest.approx(leepfast.leep(t, y), rel=1e-12)
    assert got.h_score == pytest.approx(leepfast.h_score(f32, y), rel=1e-10)
    assert got.logme == pytest.approx(leepfast.logme(f32, y), rel=1e-10)
    ranking = leepfast.rank({"bf16": t, "f32": torch.from_numpy(theta).float()}, y)
    leeps = {r["model"]: r["leep"] for r in ranking.rows}
    assert leeps["bf16"] == leepfast.leep(t, y)
    assert leeps["f32"] == leepfast.leep(theta.astype(np.float32), y)
    with pytest.raises(InputError, match=r"^models\['gpu'\]: expected an array in host"):
        leepfast.rank({"gpu": _DeviceTensor()}, y)


def test_labels_as_lists_series_and_tensors(torch):
    theta, y = _data()
    want = leepfast.leep(theta, y)
    assert leepfast.leep(theta, y.tolist()) == want
    assert leepfast.leep(theta, torch.from_numpy(y).to(torch.int32)) == want
    pandas = pytest.importorskip("pandas")
    assert leepfast.leep(theta, pandas.Series(y)) == want


class _DeviceTensor:
    """What a CUDA tensor shows leepfast: DLPack on device type 2 (kDLCUDA)."""

    def __dlpack_device__(self):
        return (2, 1)

    def __dlpack__(self, stream=None):
        raise AssertionError("a device tensor must not be read")


def test_a_tensor_on_an_accelerator_is_refused_not_copied():
    with pytest.raises(
        InputError,
        match=r"^predictions: expected an array in host "
        r"memory, got a tensor on cuda:1; move it to the host first "
        r"\(e.g. tensor.cpu\(\) in PyTorch\)$",
    ) as err:
        leepfast.leep(_DeviceTensor(), [0])
    assert err.value.argument == "predictions"
    with pytest.raises(InputError, match=r"^labels: expected an array in host memory"):
        leepfast.leep(np.array([[1.0]]), _DeviceTensor())
