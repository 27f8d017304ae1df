"""Warm ``score_files`` through each reader, as a ratio to the same rows in a ``.npy``.

    cd /tmp && python /path/to/benchmarks/readers.py [--rounds 7] [--n 200000] [--z 1000]

Writes one float32 dump (n x Z probabilities) in every format leepfast reads, reads each
once to warm the page cache (and checks that it scores as the ``.npy`` does), then times
``score_files`` on each, round-robin (a slow spell of a shared machine falls on every
format alike), and prints the median time, its ratio to the ``.npy`` file's and the
ratio of the best times (steadier when other work shares the machine). HDF5, Parquet
and Zarr are written too when h5py, pyarrow and zarr are installed. The bfloat16
safetensors file holds the same rows cut to bfloat16 (half the bytes, mapped, widened
by the kernels as they read).

A second ``.npy`` line scores the same file in 32 MiB blocks, the block of every format
that is copied (decompressed, decoded): a copied format cannot beat it, since the
kernels then run once per 32 MiB instead of once per 1 GiB view.

For each format that is decoded (decompressed, or decoded by pyarrow), the same rounds
also time the decoding alone, outside leepfast, over the same bytes (zlib, zstd,
pyarrow's row-group read), and print its floor: two passes of
the decoding alone over the ``.npy`` time. A format whose floor is above 1.3 cannot meet
the 1.3x goal through that decoder, whatever leepfast does around it.
"""

import argparse
import glob
import json
import os
import statistics
import struct
import tempfile
import time
import zipfile
import zlib

import numpy as np

import leepfast
from leepfast import _driver


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
        paths["parquet (FixedSizeList, 16384-row groups, uncompressed)"] = os.path.join(
            folder, "p.pq"
        )
        pq.write_table(
            pa.table({"p": values}),
            paths["parquet (FixedSizeList, 16384-row groups, uncompressed)"],
            row_group_size=16384,
            compression="none",
        )
        paths["parquet (FixedSizeList, 16384-row groups, snappy)"] = os.path.join(
            folder, "s.pq"
        )
        pq.write_table(  # pyarrow's defaults: snappy, dictionary tried first
            pa.table({"p": values}),
            paths["parquet (FixedSizeList, 16384-row groups, snappy)"],
            row_group_size=16384,
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
    paths["hdf5 chunked (1024 rows, gzip)"] = os.path.join(folder, "g.h5")
    with h5py.File(paths["hdf5 contiguous"], "w") as f:
        f.create_dataset("p", data=theta)
    with h5py.File(paths["hdf5 chunked (1024 rows)"], "w") as f:
        f.create_dataset("p", data=theta, chunks=(1024, z))
    with h5py.File(paths["hdf5 chunked (1024 rows, gzip)"], "w") as f:
        f.create_dataset("p", data=theta, chunks=(1024, z), compression="gzip")
    return paths, labels


# ---------------------------------------------------------------------------------------
# The decoding alone, outside leepfast: one pass over the same bytes


def _inflate_npz(path):
    """zlib's inflation of the member, fed 1 MiB at a time (what one pass must do)."""
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name, extra = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name + extra)
        d = zlib.decompressobj(-15)
        left = info.compress_size
        while left:
            piece = f.read(min(left, 1 << 20))
            left -= len(piece)
            d.decompress(piece)


def _zstd_zarr(path):
    """numcodecs' zstd decoding of every chunk file."""
    from numcodecs import Zstd

    codec = Zstd()
    for name in sorted(glob.glob(os.path.join(path, "c", "*", "*"))):
        with open(name, "rb") as f:
            codec.decode(f.read())


def _pyarrow_groups(path):
    """pyarrow's read of every row group."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for g in range(pf.metadata.num_row_groups):
        pf.read_row_group(g)


def _inflate_hdf5(path):
    """zlib's inflation of every raw chunk (read_direct_chunk)."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["p"]
        for k in range(ds.id.get_num_chunks()):
            offset = ds.id.get_chunk_info(k).chunk_offset
            zlib.decompress(ds.id.read_direct_chunk(offset)[1])


#: (format name prefix, its decoding alone)
DECODERS = (
    ("npz (compressed)", _inflate_npz),
    ("zarr", _zstd_zarr),
    ("parquet", _pyarrow_groups),
    ("hdf5 chunked (1024 rows, gzip)", _inflate_hdf5),
)


def decoder(name):
    return next((f for prefix, f in DECODERS if name.startswith(prefix)), None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--z", type=int, default=1000)
    p.add_argument("--backend", default="auto")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leepfast-readers-") as folder:
        paths, labels = write_all(folder, args.n, args.z)
        # the .npy again, in the blocks of every copied (decompressed, decoded) format:
        # 32 MiB, against the 1 GiB views of a mapped file
        copied = "npy, in 32 MiB blocks"
        blocks = {copied: _driver.DEFAULT_BLOCK_BYTES // (4 * args.z)}
        paths = {"npy": paths["npy"], copied: paths["npy"], **paths}
        times = {name: [] for name in paths}
        alone = {name: [] for name in paths if decoder(name)}
        expected = leepfast.score_files(paths["npy"], labels, backend=args.backend)
        for name, path in paths.items():  # warm the page cache; check every format
            r = leepfast.score_files(path, labels, backend=args.backend)
            rel = abs(r.leep - expected.leep) / abs(expected.leep)
            if rel > (1e-2 if "BF16" in name else 1e-12):
                raise SystemExit(f"{name}: LEEP {r.leep} differs from the .npy's")
        for _ in range(args.rounds):
            for name, path in paths.items():
                t0 = time.perf_counter()
                leepfast.score_files(
                    path, labels, backend=args.backend, block_size=blocks.get(name)
                )
                times[name].append(time.perf_counter() - t0)
                if name in alone:
                    t0 = time.perf_counter()
                    decoder(name)(path)
                    alone[name].append(time.perf_counter() - t0)
        base = statistics.median(times["npy"])
        best = min(times["npy"])
        print(f"n={args.n} Z={args.z} float32, backend {r.backend}, {args.rounds} rounds")
        print(
            "| format | median s | / .npy | best / best .npy | decoding alone, 2 "
            "passes / .npy |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, values in times.items():
            m = statistics.median(values)
            floor = (
                f"{2 * statistics.median(alone[name]) / base:.2f}" if name in alone else ""
            )
            print(
                f"| {name} | {m:.3f} | {m / base:.2f} | {min(values) / best:.2f} | "
                f"{floor} |"
            )


if __name__ == "__main__":
    main()
