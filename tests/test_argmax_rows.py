"""Pass 1's argmax (the pair counts behind NCE) for rows longer than the small rows
(Z > 16), where the AVX2 level scans a row of up to 256 values without a branch on
the data: the maximum at every position, ties between any two positions (the first
wins), the maximum in the row's tail (the last Z % 8 values, read as the last eight),
at every level this CPU runs and every element type, against the NumPy reference."""

import numpy as np
import pytest

import leepfast
from leepfast import _reference
from leepfast._tensors import bfloat16_of, widen_bfloat16

_kernels = pytest.importorskip("leepfast._kernels")
from leepfast._config import SIMD_LEVELS  # noqa: E402

LEVELS = SIMD_LEVELS[: _kernels.simd_level() + 1]
ZS = [8, 9, 15, 17, 20, 23, 24, 25, 31, 32, 33, 39, 40, 63, 64, 65, 100, 255, 256, 257]


def typed(theta, dtype):
    return bfloat16_of(theta) if dtype == "bfloat16" else theta.astype(dtype)


def wide(theta):
    if theta.dtype.itemsize == 2 and theta.dtype != np.float16:
        return widen_bfloat16(theta)
    return theta.astype(np.float64)


def rows_with_maxima(z, rng):
    """Rows whose maximum sits at each position in turn, then rows with ties between
    two positions (every ordered pair of a few positions, and the last two), then rows
    that tie everywhere."""
    base = rng.random(z) * 0.5 + 0.1
    out = []
    for at in range(z):
        row = base.copy()
        row[at] = 2.0
        out.append(row)
    picks = sorted({0, 1, 7, 8, z // 2, z - 9, z - 8, z - 2, z - 1} & set(range(z)))
    for a in picks:
        for b in picks:
            if a < b:
                row = base.copy()
                row[a] = row[b] = 2.0
                out.append(row)
    out.append(np.ones(z))
    theta = np.array(out)
    return theta / theta.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("z", ZS)
def test_argmax_at_every_position_and_ties(monkeypatch, level, dtype, z):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    theta = typed(rows_with_maxima(z, np.random.default_rng(z)), dtype)
    labels = np.arange(len(theta)) % 3
    w = wide(theta)
    # the ties survive the rounding to the type: both copies round alike
    expected = _reference.hard_counts(w, labels, 3)
    r = leepfast.score(theta, labels, backend="cython", n_threads=1)
    np.testing.assert_array_equal(r.hard_counts, expected)
    assert r.leep == pytest.approx(_reference.leep(w, labels, 3), rel=1e-12)
    assert r.nce == pytest.approx(_reference.nce(w, labels, 3), rel=1e-12, abs=1e-14)
