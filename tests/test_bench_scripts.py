"""The benchmark scripts the README quotes run, on small arrays, as a user runs them
(a subprocess from outside the tree), and print what they promise."""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("leepfast._kernels")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "args",
    [
        ["--dtype", "float32"],
        ["--dtype", "float64"],
        ["--dtype", "float16"],
        ["--dtype", "bfloat16"],
        ["--dtype", "float32", "--logits"],
        ["--dtype", "float16", "--logits"],
        ["--dtype", "float32", "--pairs"],
    ],
    ids=lambda a: "-".join(x.lstrip("-") for x in a),
)
def test_passes_prints_both_passes_from_memory_and_in_cache(args):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "passes.py"), *args, "--n", "3000", "--z", "100",
         "--y", "4", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    head, one, two = proc.stdout.strip().splitlines()
    kind = "logits" if "--logits" in args else "probabilities"
    assert head.startswith(f"{args[1]} {kind}, n=3000, Z=100, Y=4")
    assert ("with pair counts" if "--pairs" in args else "no pair counts") in head
    for line, threads in ((one, "1 thread:"), (two, "2 threads:")):
        assert line.startswith(threads)
        found = re.findall(r"([a-z 0-9]+?) [\d.]+ ms, ([\d.]+) reads", line)
        reads = {name.strip(): value for name, value in found}
        assert list(reads) == [
            "read", "pass 1", "pass 2", "pass 1 in cache", "pass 2 in cache"
        ]  # fmt: skip
        assert float(reads["read"]) == 1.0
        assert all(float(r) > 0 for r in reads.values())


def test_pairs_compares_leep_with_and_without_pair_counts():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pairs.py"), "--scale", "0.002", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "float32, n=200, Z=1000, Y=100",
        "float64, n=200, Z=1000, Y=100",
        "float16, n=200, Z=1000, Y=100",
        "float32, n=2000, Z=100, Y=10",
        "float32, n=8000, Z=10, Y=10",
    ]
    for line in lines:
        assert re.search(r"with pair counts [\d.]+ reads, without [\d.]+ \([\d.]+ of", line)
