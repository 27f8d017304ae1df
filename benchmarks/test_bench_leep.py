"""LEEP against its baselines: read floor, naive NumPy, every backend.

pytest benchmarks --benchmark-only    (the summary at the end prints the ratios)
"""

import numpy as np
import pytest

import leepfast
from leepfast import _bench
from leepfast._config import default_threads

THREADS = default_threads()
N, Z, Y = 100_000, 1000, 100
BACKENDS = leepfast.available_backends()


def _run(benchmark, fn, rounds, theta=None, **info):
    if theta is not None:
        benchmark.extra_info.update(rows=theta.shape[0], bytes=theta.nbytes)
    benchmark.extra_info.update(info)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# -- in-memory, by dtype: floor, naive, each backend ---------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_floor(benchmark, data, dtype):
    benchmark.group = f"in-memory {dtype} n={N} Z={Z} Y={Y}"
    theta, _ = data(N, Z, Y, dtype)
    _run(benchmark, lambda: _bench.read_floor(theta, THREADS), 15, theta)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_naive(benchmark, data, dtype):
    benchmark.group = f"in-memory {dtype} n={N} Z={Z} Y={Y}"
    theta, labels = data(N, Z, Y, dtype)
    value = _run(benchmark, lambda: _bench.naive_leep(theta, labels), 2, theta)
    assert np.isclose(value, leepfast.leep(theta, labels, n_target=Y), rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_leep(benchmark, data, dtype, backend):
    benchmark.group = f"in-memory {dtype} n={N} Z={Z} Y={Y}"
    theta, labels = data(N, Z, Y, dtype)
    rounds = 2 if backend == "numpy" else 9
    _run(
        benchmark,
        lambda: leepfast.leep(
            theta, labels, n_target=Y, backend=backend, n_threads=THREADS
        ),
        rounds,
        theta,
    )


# -- the Z x Y grid ------------------------------------------------------------------------

GRID = [(z, y) for z in (10, 1000, 21843) for y in (2, 100, 1000)]


def _grid_n(z):
    return max(2000, 40_000_000 // z)  # about 160 MB of float32


@pytest.mark.parametrize("z,y", GRID, ids=[f"Z{z}-Y{y}" for z, y in GRID])
def test_grid_floor(benchmark, data, z, y):
    benchmark.group = f"grid Z={z} Y={y} float32"
    theta, _ = data(_grid_n(z), z, y, "float32")
    _run(benchmark, lambda: _bench.read_floor(theta, THREADS), 9, theta)


@pytest.mark.parametrize("z,y", GRID, ids=[f"Z{z}-Y{y}" for z, y in GRID])
def test_grid_leep(benchmark, data, z, y):
    benchmark.group = f"grid Z={z} Y={y} float32"
    theta, labels = data(_grid_n(z), z, y, "float32")
    _run(
        benchmark,
        lambda: leepfast.leep(theta, labels, n_target=y, backend="cython"),
        5,
        theta,
    )


# -- time per row from n = 10k to 10M ------------------------------------------------------

SIZES = [10_000, 100_000, 1_000_000, 10_000_000]


@pytest.mark.parametrize("n", SIZES)
def test_rows_leep(benchmark, data, n):
    benchmark.group = "time per row, Z=100 Y=10 float32, cython"
    theta, labels = data(n, 100, 10, "float32")
    rounds = 25 if n <= 100_000 else 5
    _run(
        benchmark,
        lambda: leepfast.leep(theta, labels, n_target=10, backend="cython"),
        rounds,
        theta,
    )


# -- logits vs probabilities ---------------------------------------------------------------


@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
def test_logits(benchmark, data, logits):
    benchmark.group = f"logits vs probabilities float32 n={N} Z={Z} Y={Y}, cython"
    theta, labels = data(N, Z, Y, "float32")
    x = np.log(theta) if logits else theta
    _run(
        benchmark,
        lambda: leepfast.leep(x, labels, n_target=Y, logits=logits, backend="cython"),
        3 if logits else 9,
        theta,
    )


def test_logits_floor(benchmark, data):
    benchmark.group = f"logits vs probabilities float32 n={N} Z={Z} Y={Y}, cython"
    theta, _ = data(N, Z, Y, "float32")
    _run(benchmark, lambda: _bench.read_floor(theta, THREADS), 15, theta)


# -- 1 thread vs all -----------------------------------------------------------------------


@pytest.mark.parametrize("threads", sorted({1, THREADS}))
def test_threads(benchmark, data, threads):
    benchmark.group = f"threads={threads} float32 n={N} Z={Z} Y={Y}"
    theta, labels = data(N, Z, Y, "float32")
    _run(
        benchmark,
        lambda: leepfast.leep(
            theta, labels, n_target=Y, backend="cython", n_threads=threads
        ),
        9,
        theta,
    )


@pytest.mark.parametrize("threads", sorted({1, THREADS}))
def test_threads_floor(benchmark, data, threads):
    benchmark.group = f"threads={threads} float32 n={N} Z={Z} Y={Y}"
    theta, _ = data(N, Z, Y, "float32")
    _run(benchmark, lambda: _bench.read_floor(theta, threads), 15, theta)


# -- a .npy in the page cache vs the same data in memory -----------------------------------


@pytest.fixture(scope="module")
def npy_file(tmp_path_factory, data):
    theta, labels = data(N, Z, Y, "float32")
    path = tmp_path_factory.mktemp("bench") / "theta.npy"
    np.save(path, theta)
    return path


@pytest.mark.parametrize("source", ["memory", "npy-page-cache"])
def test_npy_vs_memory(benchmark, data, npy_file, source):
    benchmark.group = f"npy in page cache vs memory float32 n={N} Z={Z} Y={Y}"
    theta, labels = data(N, Z, Y, "float32")
    if source == "memory":
        fn = lambda: leepfast.leep(theta, labels, n_target=Y)  # noqa: E731
    else:

        def fn():
            return leepfast.score_files(npy_file, labels, n_target=Y, progress=False).leep

    _run(benchmark, fn, 9, theta)


def test_npy_floor(benchmark, data):
    benchmark.group = f"npy in page cache vs memory float32 n={N} Z={Z} Y={Y}"
    theta, _ = data(N, Z, Y, "float32")
    _run(benchmark, lambda: _bench.read_floor(theta, THREADS), 15, theta)
