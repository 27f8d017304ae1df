"""Throughput of leepfast.dask on a local 2-process cluster against the single-process API.

Same data for both: n rows of float32 softmax over Z source classes, Y target classes,
written as .npy shards. Baselines (one process):
  - ``leepfast.score`` on the dump loaded in memory, all cores (the fastest case);
  - ``leepfast.score`` on the same array with one thread.
  - ``leepfast.score_files`` over the same shard files, all cores.
Contender: ``leepfast.dask.score`` on ``from_npy_shards`` over a LocalCluster of
``--workers`` processes with one thread each (every chunk memory-mapped on its worker).
All timings are warm (page cache filled by a first run); medians of ``--repeat`` runs.
The ratios printed are single-process time / dask time (> 1: dask is faster).

    python benchmarks/dask_throughput.py --n 200000 --z 1000 --y 100 --shards 8

Not a test: a measurement. It writes the shards under ``--dir`` (default: a temporary
directory removed at the end).
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

import leepfast
from leepfast import _bench


def write_shards(folder, n, z, y, shards, seed=0):
    rng = np.random.default_rng(seed)
    paths, parts = [], []
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        theta = rng.random((b - a, z), dtype=np.float32) ** 3
        theta /= theta.sum(axis=1, keepdims=True)
        path = Path(folder) / f"preds-{i:04d}.npy"
        np.save(path, theta)
        paths.append(path)
        parts.append(theta)
    return paths, np.concatenate(parts), rng.integers(0, y, n)


def timed(contenders, repeat):
    """Median seconds of each contender, timed round-robin (``_bench.median_times``),
    and the value of each, from one warm-up run first."""
    values = {name: func() for name, func in contenders.items()}
    return _bench.median_times(contenders, repeat), values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--z", type=int, default=1000)
    parser.add_argument("--y", type=int, default=100)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    import leepfast.dask as ld

    folder = args.dir or tempfile.mkdtemp(prefix="leepfast-dask-bench-")
    try:
        paths, theta, labels = write_shards(folder, args.n, args.z, args.y, args.shards)
        gb = theta.nbytes / 1e9
        print(
            f"n={args.n} Z={args.z} Y={args.y} float32: {gb:.2f} GB in "
            f"{args.shards} shards; leepfast {leepfast.__version__}, "
            f"backends {leepfast.available_backends()}"
        )

        with (
            LocalCluster(
                n_workers=args.workers,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            n_workers = len(client.scheduler_info()["workers"])
            predictions = ld.from_npy_shards(paths, chunk_rows=args.chunk_rows)
            dask_name = f"leepfast.dask.score, {n_workers} workers x 1 thread"
            contenders = {
                "leepfast.score, in memory, all cores": lambda: leepfast.score(
                    theta, labels
                ),
                "leepfast.score, in memory, 1 thread": lambda: leepfast.score(
                    theta, labels, n_threads=1
                ),
                "leepfast.score_files, same shards, all cores": lambda: (
                    leepfast.score_files([str(p) for p in paths], labels)
                ),
                dask_name: lambda: ld.score(predictions, labels, n_target=args.y),
                "  same, n_target inferred with dask": lambda: ld.score(
                    predictions, labels
                ),
            }
            if not hasattr(leepfast, "score_files"):
                del contenders["leepfast.score_files, same shards, all cores"]
            times, values = timed(contenders, args.repeat)

        want, got = values["leepfast.score, in memory, all cores"], values[dask_name]
        t_dask = times[dask_name]
        for name, t in times.items():
            print(
                f"{name:48s} {t:8.3f} s  {gb / t:6.2f} GB/s  {args.n / t / 1e6:6.2f} Mrow/s"
            )
        for name, t in times.items():
            if not name.startswith(("leepfast.dask", " ")):
                print(f"ratio ({name}) / dask: {t / t_dask:.2f}")
        rel = abs(got.leep - want.leep) / abs(want.leep)
        print(
            f"LEEP {got.leep:.12f} (dask) vs {want.leep:.12f} (in memory), "
            f"relative difference {rel:.1e}"
        )
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
