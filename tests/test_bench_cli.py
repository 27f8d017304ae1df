"""`leepfast bench`: a real subprocess on a tiny problem; the naive baseline is right."""

import subprocess
import sys

import numpy as np
import pytest

import leepfast
from leepfast import _bench, _reference
from leepfast._api import row_sum_tolerance
from leepfast._tensors import as_floats


def run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "leepfast", "bench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def table(stdout):
    """The Markdown table of ``leepfast bench`` as one dict per row, by column name."""
    cells = [
        [c.strip() for c in line.split("|")[1:-1]]
        for line in stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[1:]]


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
        "bfloat16",
        "--backends",
        "cython",
        "numpy",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    rows = table(p.stdout)
    names = [(r["backend"], r["dtype"]) for r in rows]
    for dtype in ("float32", "float16", "bfloat16"):
        for backend in ("read floor", "naive numpy", "cython", "numpy"):
            assert (backend, dtype) in names
    for r in rows:
        # 8 MB of float32 (4 MB of float16): every time prints as a positive number of
        # ms; GB/s may print as 0.00 for the slow reference
        assert float(r["ms"]) > 0 and float(r["GB/s"]) >= 0 and float(r["reads"]) > 0
    floor = [r for r in rows if r["backend"] == "read floor"]
    assert all(float(r["reads"]) == 1.0 for r in floor)
    # the compiled rows name their SIMD level (the one in use) and the DESIGN goals
    best = _bench.cpu_levels()[0]
    for r in rows:
        if r["backend"] == "cython":
            assert r["level"] == best
            assert r["goal"] == (
                "reads <= 3" if r["dtype"] == "float32" else "time <= 0.6x float32"
            )
            assert r["holds"].split()[0] in ("yes", "no")
        else:
            assert r["level"] == "-"
    assert "20x" not in p.stdout  # no obsolete goal against the naive code


def test_bench_times_every_level(tmp_path):
    p = run(
        "--n",
        5000,
        "--n-source",
        1000,
        "--n-target",
        5,
        "--repeat",
        1,
        "--dtypes",
        "float64",
        "--backends",
        "cython",
        "--no-naive",
        "--levels",
        "all",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    rows = [r for r in table(p.stdout) if r["backend"] == "cython"]
    assert [r["level"] for r in rows] == _bench.cpu_levels()
    assert all(r["goal"] == "reads <= 2.2" for r in rows)


def test_bench_rejects_an_unknown_level_in_one_line(tmp_path):
    p = run("--levels", "avx9", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1
    assert "--levels: expected 'all' or levels of this CPU" in p.stderr
    assert "got 'avx9'" in p.stderr


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
    for dtype in ("float16", "float32", "float64", "bfloat16"):
        theta, _ = _bench.make_predictions(200, 1000, 3, dtype, seed=1)
        sums = as_floats(theta).astype(np.float64).sum(axis=1)
        assert np.all(np.abs(sums - 1) <= row_sum_tolerance(theta.dtype))
