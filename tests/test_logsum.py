"""Pass 2 sums log terms as the log of a running product (mantissa and exponent): the
value must equal a plain sum of logs, for long runs of small terms and for terms so
small (below 1e-280) that they take the direct log."""

import numpy as np
import pytest

import leepfast
from leepfast import _reference


def test_long_runs_of_small_terms_match_a_sum_of_logs(backend):
    # spread rows over 3 target classes: every p is about 1/3, so the running
    # product's exponent reaches about -3e5 over 200k rows
    rng = np.random.default_rng(7)
    n, z, y = 200_000, 20, 3
    theta = rng.random((n, z))
    theta /= theta.sum(axis=1, keepdims=True)
    labels = rng.integers(0, y, n)
    got = leepfast.leep(theta, labels, n_target=y, backend=backend)
    assert got == pytest.approx(_reference.leep(theta, labels, y), rel=1e-12)


def test_terms_below_the_product_range_take_the_direct_log(backend):
    # pass 1 gives C[0, 1] = 1e-300 / (1e-300 + 1): pass-2 rows of label 0 that put
    # all their mass on source class 1 have p of about 1e-300
    first = np.array([[1.0 - 1e-300, 1e-300], [0.0, 1.0]])
    labels = np.array([0, 1])
    acc = leepfast.Accumulator(n_target=2, backend=backend)
    acc.accumulate(first, labels)
    acc.finalize()
    second = np.array([[0.0, 1.0], [0.0, 1.0]])
    acc.score(second, labels)
    c = acc.conditional
    expected = (np.log(c[0, 1]) + np.log(c[1, 1])) / 2
    assert c[0, 1] < 1e-280
    assert acc.result().leep == pytest.approx(expected, rel=1e-14)
