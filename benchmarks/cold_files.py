"""Cold and warm ``score_files`` on a 1.6 GB float32 dump, the page cache dropped with
``posix_fadvise(DONTNEED)`` before each cold run (no root needed; Linux only).

    cd /tmp && python /path/to/benchmarks/cold_files.py [--rounds 10] [--dir /tmp/cold]

Prints the medians of cold and warm runs and of the disk's own sequential read of the
file (the floor), interleaved round by round. Compare two builds by running this script
under each venv in alternation: timings are only comparable as ratios within one session.
"""

import argparse
import os
import statistics
import time

import numpy as np


def _make(path, labels, n=400_000, n_source=1000, seed=1):
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, "w+", np.float32, (n, n_source))
    for start in range(0, n, 20_000):
        block = rng.random((20_000, n_source), dtype=np.float32)
        out[start : start + 20_000] = block / block.sum(axis=1, keepdims=True)
    out.flush()
    del out
    np.save(labels, rng.integers(0, 100, n))


def _evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _read(path):
    _evict(path)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 24):
            pass
    return time.perf_counter() - start


def _score(path, labels, cold):
    import leepfast

    if cold:
        _evict(path)
    start = time.perf_counter()
    leepfast.score_files(path, labels)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dir", default="/tmp/leepfast-cold")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "p.npy")
    labels = os.path.join(args.dir, "y.npy")
    if not os.path.exists(path):
        _make(path, labels)
    times = {"read floor": [], "cold": [], "warm": []}
    for _ in range(args.rounds):
        times["read floor"].append(_read(path))
        times["cold"].append(_score(path, labels, cold=True))
        times["warm"].append(_score(path, labels, cold=False))
    for name, values in times.items():
        spread = f"{min(values):.3f}-{max(values):.3f}"
        print(f"{name:10s} median {statistics.median(values):.3f} s  ({spread})")


if __name__ == "__main__":
    main()
