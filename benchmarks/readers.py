"""Warm ``score_files`` through each reader, as a ratio to the same rows in a ``.npy``.

    cd /tmp && python /path/to/benchmarks/readers.py [--rounds 7] [--n 200000] [--z 1000]

Writes one float32 dump (n x Z probabilities) in every format leepfast reads, reads each
once to warm the page cache, then times ``score_files`` on each, round-robin (a slow
spell of a shared machine falls on every format alike), and prints the median time and
its ratio to the ``.npy`` file's (HDF5, Parquet and Zarr too when h5py, pyarrow and
zarr are installed). The bfloat16
safetensors file holds the same rows rounded to bfloat16 (half the bytes, widened block
by block).
"""

import argparse
import json
import os
import statistics
import struct
import tempfile
import time

import numpy as np

import leepfast


def _safetensors(path, code, arr):
    raw = arr.tobytes()
    header = {"p": {"dtype": code, "shape": list(arr.shape), "data_offsets": [0, len(raw)]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.write(raw)


def write_all(folder, n, z, seed=0):
    """{format: path} of the same rows in every format, and the labels."""
    rng = np.random.default_rng(seed)
    theta = rng.random((n, z), dtype=np.float32)
    theta /= theta.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 100, n)
    paths = {"npy": os.path.join(folder, "p.npy")}
    np.save(paths["npy"], theta)
    paths["npz (stored)"] = os.path.join(folder, "p.npz")
    np.savez(paths["npz (stored)"], p=theta)
    paths["npz (compressed)"] = os.path.join(folder, "c.npz")
    np.savez_compressed(paths["npz (compressed)"], p=theta)
    paths["safetensors F32"] = os.path.join(folder, "p.safetensors")
    _safetensors(paths["safetensors F32"], "F32", theta)
    bits = (theta.view(np.uint32) >> 16).astype("<u2")  # truncated: still sums to ~1
    paths["safetensors BF16"] = os.path.join(folder, "b.safetensors")
    _safetensors(paths["safetensors BF16"], "BF16", bits)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pass
    else:
        values = pa.FixedSizeListArray.from_arrays(pa.array(theta.reshape(-1)), z)
        paths["parquet (FixedSizeList, 16384-row groups)"] = os.path.join(folder, "p.pq")
        pq.write_table(
            pa.table({"p": values}),
            paths["parquet (FixedSizeList, 16384-row groups)"],
            row_group_size=16384,
            compression="none",
        )
        del values
    try:
        import zarr
    except ImportError:
        pass
    else:
        paths["zarr (16384-row chunks, zstd)"] = os.path.join(folder, "p.zarr")
        store = zarr.create_array(
            store=paths["zarr (16384-row chunks, zstd)"],
            shape=theta.shape,
            chunks=(16384, z),
            dtype=theta.dtype,
        )
        store[:] = theta
    try:
        import h5py
    except ImportError:
        return paths, labels
    paths["hdf5 contiguous"] = os.path.join(folder, "p.h5")
    paths["hdf5 chunked (1024 rows)"] = os.path.join(folder, "c.h5")
    with h5py.File(paths["hdf5 contiguous"], "w") as f:
        f.create_dataset("p", data=theta)
    with h5py.File(paths["hdf5 chunked (1024 rows)"], "w") as f:
        f.create_dataset("p", data=theta, chunks=(1024, z))
    return paths, labels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--z", type=int, default=1000)
    p.add_argument("--backend", default="auto")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leepfast-readers-") as folder:
        paths, labels = write_all(folder, args.n, args.z)
        times = {name: [] for name in paths}
        for path in paths.values():  # warm the page cache; check every format agrees
            r = leepfast.score_files(path, labels, backend=args.backend)
        for _ in range(args.rounds):
            for name, path in paths.items():
                t0 = time.perf_counter()
                leepfast.score_files(path, labels, backend=args.backend)
                times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["npy"])
        print(f"n={args.n} Z={args.z} float32, backend {r.backend}, {args.rounds} rounds")
        print("| format | median s | / .npy |")
        print("|---|---:|---:|")
        for name, values in times.items():
            m = statistics.median(values)
            print(f"| {name} | {m:.3f} | {m / base:.2f} |")


if __name__ == "__main__":
    main()
