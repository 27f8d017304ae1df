"""`leepfast bench`: a real subprocess on a tiny problem; the naive baseline is right."""

import subprocess
import sys

import numpy as np
import pytest

import leepfast
from leepfast import _bench, _reference


def run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "leepfast", "bench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_bench_prints_a_table_of_ratios(tmp_path):
    p = run(
        "--n",
        20000,
        "--n-source",
        100,
        "--n-target",
        5,
        "--repeat",
        1,
        "--dtypes",
        "float32",
        "float16",
        "--backends",
        "cython",
        "numpy",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    rows = [
        line.split("|")[1:-1]
        for line in p.stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    ][1:]
    names = [(r[0].strip(), r[1].strip()) for r in rows]
    for dtype in ("float32", "float16"):
        for backend in ("read floor", "naive numpy", "cython", "numpy"):
            assert (backend, dtype) in names
    for r in rows:
        # 8 MB of float32 (4 MB of float16): every time prints as a positive number of
        # ms; GB/s may print as 0.00 for the slow reference
        assert float(r[2]) > 0 and float(r[3]) >= 0 and float(r[4]) > 0
    floor = [r for r in rows if r[0].strip() == "read floor"]
    assert all(float(r[4]) == 1.0 for r in floor)


def test_bench_rejects_bad_sizes_in_one_line(tmp_path):
    p = run("--n", 0, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1
    assert "--n: expected a positive integer, got 0" in p.stderr


def test_naive_baseline_computes_leep():
    theta, labels = _bench.make_predictions(500, 30, 4, "float64", seed=3)
    assert _bench.naive_leep(theta, labels) == pytest.approx(
        _reference.leep(theta, labels, 4), rel=1e-12
    )
    assert leepfast.leep(theta, labels) == pytest.approx(
        _bench.naive_leep(theta, labels), rel=1e-12
    )


def test_generated_rows_pass_each_dtype_tolerance():
    for dtype in ("float16", "float32", "float64"):
        theta, _ = _bench.make_predictions(200, 1000, 3, dtype, seed=1)
        sums = theta.astype(np.float64).sum(axis=1)
        assert np.all(np.abs(sums - 1) <= leepfast.ROW_SUM_TOLERANCE[np.dtype(dtype)])
