"""leepfast.dask on a real 2-process LocalCluster on 127.0.0.1 (and the threaded
scheduler): equal to the in-memory API, shards read on the workers, a worker killed
mid-run, bad input on a worker raising the in-memory error."""

import os
import pickle
import re
import signal
import subprocess
import sys
import time

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, Event, LocalCluster, get_task_stream, rejoin, secede

import leepfast
import leepfast.dask as ld

# The helpers below run inside the worker processes, which cannot import this file.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

RTOL = 1e-12
N, Z, Y = 10_007, 50, 7


def probabilities(rng, n, z, dtype=np.float64):
    theta = rng.random((n, z)) ** 3
    theta[np.arange(n), rng.integers(0, z, n)] += 0.05
    theta /= theta.sum(axis=1, keepdims=True)
    return theta.astype(dtype)


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20261127)
    theta = probabilities(rng, N, Z)
    labels = rng.integers(0, Y, N)
    labels[labels == 3] = 4  # an absent target class inside [0, Y)
    return theta, labels


def assert_same(got, want):
    assert got.n_samples == want.n_samples
    assert got.n_source == want.n_source and got.n_target == want.n_target
    np.testing.assert_allclose(got.leep, want.leep, rtol=RTOL, atol=0)
    np.testing.assert_allclose(got.nce, want.nce, rtol=RTOL, atol=0)
    np.testing.assert_allclose(got.joint, want.joint, rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(got.conditional, want.conditional, rtol=RTOL, atol=1e-300)
    np.testing.assert_array_equal(got.class_counts, want.class_counts)
    np.testing.assert_array_equal(got.hard_counts, want.hard_counts)


CHUNKINGS = {
    "even rows": (1000, Z),
    "uneven last, columns split": (997, 17),
    "one chunk": (N, Z),
    "irregular rows and columns": ((1, 4000, 3000, 2006, 1000), (20, 30)),
}


@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
def test_cluster_equals_in_memory(client, data, chunks):
    theta, labels = data
    want = leepfast.score(theta, labels)
    predictions = da.from_array(theta, chunks=chunks)
    y = da.from_array(labels, chunks=1500)  # not aligned with the rows: rechunked
    with dask.config.set(scheduler=client):
        got = ld.score(predictions, y)
        assert_same(got, want)
        np.testing.assert_allclose(ld.leep(predictions, y), want.leep, rtol=RTOL)
        assert ld.nce(predictions, y) == pytest.approx(want.nce, rel=RTOL)
    # the paper's bound holds on the distributed result too (Theorem 1)
    assert got.leep >= got.nce + np.mean(np.log(theta.max(axis=1))) - 1e-12


def test_client_compute_float32_logits_and_numpy_labels(client, data):
    theta, labels = data
    logits = (np.log(theta) + 3.0).astype(np.float32)
    want = leepfast.score(logits, labels, logits=True, n_target=Y + 2)
    graph = ld.score(
        da.from_array(logits, chunks=(2503, 25)),
        labels,
        logits=True,
        n_target=Y + 2,
        compute=False,
    )
    got = client.compute(graph).result()
    assert_same(got, want)
    assert got.n_target == Y + 2 and got.class_counts[-2:].tolist() == [0, 0]


@pytest.mark.parametrize("backend", ["cython", "numba", "numpy"])
def test_threaded_scheduler_each_backend(data, backend):
    if backend not in leepfast.available_backends():
        pytest.skip(f"backend {backend!r} not available")
    theta, labels = data
    want = leepfast.score(theta, labels, backend=backend)
    with dask.config.set(scheduler="threads"):
        got = ld.score(
            da.from_array(theta, chunks=(613, 50)),
            da.from_array(labels),
            backend=backend,
            n_threads=2,
            block_size=100,
            split_every=3,
        )
    assert_same(got, want)
    assert got.backend == backend


def test_one_hot_leep_equals_nce_sync():
    # one-hot predictions: LEEP == NCE, a property independent of the implementation
    rng = np.random.default_rng(5)
    z = rng.integers(0, 6, 3001)
    theta = np.eye(6)[z]
    y = (z + (rng.random(3001) < 0.3)) % 4
    got = ld.score(da.from_array(theta, chunks=(400, 4)), y, compute=False).compute(
        scheduler="sync"
    )
    assert got.leep == pytest.approx(got.nce, rel=1e-12)
    assert got.leep == pytest.approx(leepfast.leep(theta, y), rel=RTOL)


def test_inputs_not_modified(data):
    theta, labels = data
    t0, l0 = theta.copy(), labels.copy()
    with dask.config.set(scheduler="threads"):
        ld.score(da.from_array(theta, chunks=(1000, 20)), labels, logits=True)
    np.testing.assert_array_equal(theta, t0)
    np.testing.assert_array_equal(labels, l0)


# ---------------------------------------------------------------------------------------
# shards on the workers' disks


def write_shards(tmp_path, theta, sizes, fortran=(), swapped=()):
    paths, start = [], 0
    for i, size in enumerate(sizes):
        part = theta[start : start + size]
        if i in swapped:
            part = part.astype(part.dtype.newbyteorder(">"))
        if i in fortran:
            part = np.asfortranarray(part)
        path = tmp_path / f"shard-{i:03d}.npy"
        np.save(path, part)
        paths.append(path)
        start += size
    assert start == len(theta)
    return paths


def test_shards_read_on_the_workers(client, data, tmp_path):
    theta, labels = data
    theta32 = theta.astype(np.float32)
    paths = write_shards(tmp_path, theta32, [3000, 1, 4000, 3006])
    predictions = ld.from_npy_shards(paths, chunk_rows=1200)
    assert predictions.shape == (N, Z) and predictions.dtype == np.float32
    assert predictions.chunks[0] == (
        1200,
        1200,
        600,
        1,
        1200,
        1200,
        1200,
        400,
        1200,
        1200,
        606,
    )
    # the graph the client sends holds paths, not rows
    graph_bytes = len(pickle.dumps(dict(predictions.__dask_graph__())))
    assert graph_bytes < theta32.nbytes / 20
    want = leepfast.score(theta32, labels)
    with get_task_stream(client=client) as stream, dask.config.set(scheduler=client):
        got = ld.score(predictions, labels)
    assert_same(got, want)
    # every chunk was mapped inside the leepfast task that used it, on a worker: no
    # task returned rows (the largest results are the (Y, Z) states), so none travelled
    workers = set(client.scheduler_info()["workers"])
    passes = [
        t for t in stream.data if re.match(r"_(accumulate|score)_chunk", str(t["key"]))
    ]
    assert len(passes) == 2 * len(predictions.chunks[0])
    assert {t["worker"] for t in stream.data} <= workers
    assert not [t for t in stream.data if "load" in str(t["key"])]
    chunk_bytes = min(predictions.chunks[0][:3]) * Z * 4
    assert max(t["nbytes"] for t in stream.data) < chunk_bytes / 4


def chunk_in(task, depth=0):
    """The _NpyChunk among a graph task's arguments (searched a few levels deep)."""
    if isinstance(task, ld._NpyChunk):
        return task
    if depth > 4:
        return None
    items = list(task) if isinstance(task, (tuple, list)) else []
    for attr in ("args", "value", "kwargs"):
        value = getattr(task, attr, None)
        if isinstance(value, dict):
            value = list(value.values())
        if value is not None:
            items += list(value) if isinstance(value, (tuple, list)) else [value]
    for item in items:
        if (found := chunk_in(item, depth + 1)) is not None:
            return found
    return None


def test_shards_pinned_to_the_workers_that_hold_them(client, data, tmp_path):
    # shards on local disks: each shard's tasks run only on the worker named for it
    theta, labels = data
    paths = write_shards(tmp_path, theta, [2000, 3000, 1007, 4000])
    with client.as_current(), dask.config.set(scheduler=client):
        predictions = ld.from_npy_shards(paths, chunk_rows=1500, workers=[1, 0, 1, [1]])
        graph = ld.score(predictions, labels, compute=False)
        expected = {
            str(key): chunk_in(task).workers
            for key, task in dict(graph.__dask_graph__()).items()
            if re.match(r"_(accumulate|score)_chunk", str(key))
        }
        with get_task_stream(client=client) as stream:
            got = client.compute(graph).result()
    assert_same(got, leepfast.score(theta, labels))
    names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
    ran = {
        str(t["key"]): names[t["worker"]] for t in stream.data if str(t["key"]) in expected
    }
    assert len(ran) == len(expected) == 2 * 8
    assert sorted(expected.values()) == [(0,)] * 4 + [(1,)] * 12
    assert all(expected[key] == (name,) for key, name in ran.items())
    with pytest.raises(ValueError, match=r"^workers: expected one entry per path \(4\)"):
        ld.from_npy_shards(paths, workers=[0, 1])
    with pytest.raises(TypeError, match="^workers: expected None or a sequence"):
        ld.from_npy_shards(paths, workers="tcp://127.0.0.1:1")


@pytest.mark.parametrize("swapped", [(), (0, 1)], ids=["native", "big-endian"])
def test_shards_fortran_order_threads(data, tmp_path, swapped):
    theta, labels = data
    paths = write_shards(tmp_path, theta, [5000, 5007], fortran=(0, 1), swapped=swapped)
    assert not np.load(paths[0], mmap_mode="r").flags.c_contiguous
    predictions = ld.from_npy_shards(paths)
    assert predictions.chunks[0] == (5000, 5007)
    want = leepfast.score(theta, labels)
    with dask.config.set(scheduler="threads"):
        assert_same(ld.score(predictions, labels, block_size=777), want)
        # rechunked: no longer the shards' own chunks, the mapped rows are task results
        assert_same(ld.score(predictions.rechunk((2000, 25)), labels), want)


def test_shard_errors(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.full((4, 3), 1 / 3))
    with pytest.raises(TypeError, match="paths: expected a sequence of .npy paths"):
        ld.from_npy_shards(str(good))
    with pytest.raises(ValueError, match="paths: expected at least one"):
        ld.from_npy_shards([])
    obj = tmp_path / "object.npy"
    np.save(obj, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object.npy.*holds Python objects"):
        ld.from_npy_shards([obj])
    other = tmp_path / "other.npy"
    np.save(other, np.full((2, 4), 0.25))
    with pytest.raises(
        ValueError,
        match=r"other.npy\): holds shape \(2, 4\) of float64; "
        r"expected 3 columns of float64",
    ):
        ld.from_npy_shards([good, other])
    ints = tmp_path / "ints.npy"
    np.save(ints, np.ones((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="expected float16, float32 or float64 pred"):
        ld.from_npy_shards([ints])
    text = tmp_path / "text.npy"
    text.write_text("not an npy file at all")
    with pytest.raises(ValueError, match=r"text.npy\): not a .npy file"):
        ld.from_npy_shards([text])
    with pytest.raises(ValueError, match="chunk_rows: expected a positive integer, got 0"):
        ld.from_npy_shards([good], chunk_rows=0)
    # truncated after the client read the header: the task names the file
    short = tmp_path / "short.npy"
    np.save(short, np.full((4, 3), 1 / 3))
    predictions = ld.from_npy_shards([short])
    short.write_bytes(short.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"short.npy\): truncated: the header says"):
        ld.leep(predictions, np.zeros(4, dtype=int), compute=False).compute(
            scheduler="sync"
        )


# ---------------------------------------------------------------------------------------
# bad input on a worker: the in-memory exception, with global rows


def in_memory_error(theta, labels, **kw):
    with pytest.raises((TypeError, ValueError)) as info:
        leepfast.score(theta, labels, **kw)
    return info.value


def bad_inputs(theta, labels):
    nan = theta.copy()
    nan[5555, 7] = np.nan
    negative = theta.copy()
    negative[9001, 3] = -0.25
    negative[9001, 4] += 0.25
    unnormalised = theta.copy()
    unnormalised[4321] *= 1.5
    out_of_range = labels.copy()
    out_of_range[7777] = Y
    negative_label = labels.copy()
    negative_label[6001] = -2
    huge_label = labels.astype(np.uint64)
    huge_label[[8000, 9000]] = 2**63
    float_label = labels.astype(np.float64)  # integer-valued floats are labels ...
    float_label[8123] += 0.5  # ... but not 0.5
    return {
        "nan": (nan, labels, {}),
        "negative": (negative, labels, {}),
        "row sum": (unnormalised, labels, {}),
        "label >= n_target": (theta, out_of_range, {"n_target": Y}),
        "negative label, n_target inferred": (theta, negative_label, {}),
        "negative label, n_target given": (theta, negative_label, {"n_target": Y}),
        "uint64 label beyond int64": (theta, huge_label, {}),
        "integer predictions": (theta.astype(np.int64), labels, {}),
        "float labels": (theta, float_label, {}),
        "length mismatch": (theta, labels[:-1], {}),
        "n_target zero": (theta, labels, {"n_target": 0}),
        "unknown backend": (theta, labels, {"backend": "fortran"}),
    }


def test_bad_input_on_a_worker_is_the_in_memory_error(client, data):
    theta, labels = data
    for t, y, kw in bad_inputs(theta, labels).values():
        want = in_memory_error(t, y, **kw)
        predictions = da.from_array(t, chunks=(1000, 30))
        y_dask = da.from_array(y, chunks=700)
        with dask.config.set(scheduler=client):
            with pytest.raises(type(want), match=f"^{re.escape(str(want))}$"):
                ld.score(predictions, y_dask, **kw)


def test_client_side_checks(data):
    theta, labels = data
    with dask.config.set(scheduler="sync"):
        # a NumPy array is wrapped in a dask array: same value
        assert ld.leep(theta[:3000], labels[:3000]) == pytest.approx(
            leepfast.leep(theta[:3000], labels[:3000]), rel=RTOL
        )
        unknown = da.from_array(theta, chunks=(1000, Z))[da.from_array(labels) >= 0]
        with pytest.raises(
            ValueError,
            match=r"^predictions: expected a dask array with "
            r"known chunk sizes, got shape \(nan, 50\)",
        ):
            ld.score(unknown, labels)
        predictions = da.from_array(theta, chunks=(1000, Z))
        with pytest.raises(TypeError, match="^split_every: expected an integer >= 2, got"):
            ld.score(predictions, labels, split_every=2.0)
        with pytest.raises(
            ValueError, match="^split_every: expected an integer >= 2, got 1"
        ):
            ld.score(predictions, labels, split_every=1)
        with pytest.raises(ValueError, match="^n_threads: expected None, -1"):
            ld.score(predictions, labels, n_threads=0)


def test_error_names_global_row():
    # the row is counted across chunks and blocks, not from the start of a chunk
    theta = np.full((50, 2), 0.5)
    theta[43] = [0.5, 0.6]
    predictions = da.from_array(theta, chunks=(20, 2))
    with pytest.raises(ValueError, match=r"^predictions: row 43 sums to 1\.1;"):
        ld.leep(
            predictions, np.zeros(50, dtype=np.uint8), block_size=3, compute=False
        ).compute(scheduler="sync")


def test_importing_leepfast_does_not_import_dask(tmp_path):
    code = "import sys, leepfast; sys.exit('dask' in sys.modules)"
    # outside the source tree, so that the installed package is the one imported
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0


# ---------------------------------------------------------------------------------------
# a worker killed mid-run (last: the nanny restarts it, the test waits for it)


def in_memory_states(dask_scheduler):
    """Per finished pass-1 state: the workers that hold it."""
    return {
        str(key): [ws.address for ws in ts.who_has]
        for key, ts in dask_scheduler.tasks.items()
        if "_accumulate_chunk" in str(key) and ts.state == "memory"
    }


def test_worker_killed_mid_run(client):
    # A local function: plain pickle cannot ship it by reference (this test module is
    # not importable on the workers when the package is installed), so distributed
    # sends it by value with cloudpickle.
    def gated_chunk(k, rows, z, gated, event_name):
        """Chunk k of the test data; gated chunks wait (outside the worker's thread
        pool) until the test has killed a worker."""
        if gated:
            secede()
            Event(event_name).wait(timeout=120)
            rejoin()
        return probabilities(np.random.default_rng(1000 + k), rows, z)

    rows, n_chunks, n_free = 1500, 8, 4
    event_name = f"leepfast-test-go-{os.getpid()}-{time.monotonic_ns()}"
    blocks = [
        da.from_delayed(
            dask.delayed(gated_chunk, pure=True)(k, rows, Z, k >= n_free, event_name),
            shape=(rows, Z),
            dtype=np.float64,
        )
        for k in range(n_chunks)
    ]
    predictions = da.concatenate(blocks)
    labels = np.random.default_rng(3).integers(0, Y, rows * n_chunks)
    theta = np.concatenate(
        [probabilities(np.random.default_rng(1000 + k), rows, Z) for k in range(n_chunks)]
    )
    want = leepfast.score(theta, labels)

    go = Event(event_name, client=client)
    future = client.compute(ld.score(predictions, labels, compute=False))
    try:
        # wait until the ungated chunks have finished pass 1 (they are not gated, so
        # this always happens); the gated ones hold the graph before the tree merge
        deadline = time.monotonic() + 120
        while len(states := client.run_on_scheduler(in_memory_states)) < n_free:
            assert time.monotonic() < deadline, "pass 1 of the free chunks never finished"
            time.sleep(0.05)
        assert not future.done()
        victim = next(iter(states.values()))[0]
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while victim in client.scheduler_info()["workers"]:
            assert time.monotonic() < deadline, "the killed worker never left"
            time.sleep(0.05)
    finally:
        go.set()
    got = future.result(timeout=120)
    assert_same(got, want)
    client.wait_for_workers(2, timeout=60)


# ---------------------------------------------------------------------------------------
# workers= naming no worker, and the shard registry


def test_workers_matching_no_worker_is_a_clear_error(client, data, tmp_path):
    # 13.16: names that match no worker (the README's example, the machine's host name
    # when the workers registered as 127.0.0.1) made from_npy_shards hang forever
    theta, _ = data
    paths = write_shards(tmp_path, theta, [5000, 5007])
    with client.as_current():
        for bad in (
            ["worker-a", "worker-b"],
            [0, "no-such-host"],
            [0, [7, "x"]],
            [0, "tcp://127.0.0.1:1"],
        ):
            start = time.monotonic()
            with pytest.raises(ValueError) as info:
                ld.from_npy_shards(paths, workers=bad)
            assert time.monotonic() - start < 30  # bounded: it used to never return
            message = str(info.value)
            assert message.startswith("workers: ")
            assert "matches no worker of the cluster by address, name or host" in message
            for address, w in client.scheduler_info()["workers"].items():
                assert address in message and f"name {w['name']!r}" in message
        # by address (with and without the protocol), name and host: accepted
        (a0, w0), (a1, _) = sorted(client.scheduler_info()["workers"].items())
        for good in ([a0, a1], [a0.split("://")[1], w0["name"]], ["127.0.0.1", [a0, a1]]):
            predictions = ld.from_npy_shards(paths, workers=good)
            assert predictions.shape == theta.shape


def test_shard_registry_is_emptied_when_the_arrays_go(data, tmp_path):
    # dask._NPY_ARRAYS kept every array's chunks for the life of the process
    import gc

    theta, labels = data
    paths = write_shards(tmp_path, theta, [4000, 6007])
    first = ld.from_npy_shards(paths)
    second = ld.from_npy_shards(paths)  # an equal array: the same name, one entry
    name = first.name
    assert second.name == name and name in ld._NPY_ARRAYS
    other = ld.from_npy_shards(paths, chunk_rows=3000)
    del first
    gc.collect()
    assert name in ld._NPY_ARRAYS  # the equal array still uses it
    with dask.config.set(scheduler="sync"):
        assert ld.leep(second, labels) == pytest.approx(
            leepfast.leep(theta, labels), rel=RTOL
        )
    del second
    gc.collect()
    assert name not in ld._NPY_ARRAYS and name not in ld._NPY_USERS
    assert other.name in ld._NPY_ARRAYS
    other_name = other.name
    del other
    gc.collect()
    assert other_name not in ld._NPY_ARRAYS and other_name not in ld._NPY_USERS


# ---------------------------------------------------------------------------------------
# other formats: through dask's own readers (zarr, HDF5), on the loopback cluster


def test_zarr_and_hdf5_through_dask_readers_on_the_cluster(client, data, tmp_path):
    theta, labels = data
    want = leepfast.score(theta, labels)
    arrays = {}
    if sys.version_info >= (3, 11):  # the test extra installs zarr 3 there (it needs 3.11)
        import zarr

        store = zarr.create_array(
            store=str(tmp_path / "p.zarr"), shape=theta.shape, chunks=(1500, Z), dtype="f8"
        )
        store[:] = theta
        arrays["zarr"] = da.from_zarr(str(tmp_path / "p.zarr"))
    import h5py

    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("model/probs", data=theta, chunks=(1200, Z), compression="gzip")
    h5 = h5py.File(tmp_path / "p.h5", "r")  # distributed ships datasets by file and name
    arrays["hdf5"] = da.from_array(h5["model/probs"], chunks=(2400, Z))
    try:
        with dask.config.set(scheduler=client):
            for kind, predictions in arrays.items():
                got = ld.score(predictions, labels)
                assert got.leep == pytest.approx(want.leep, rel=RTOL), kind
                assert got.nce == pytest.approx(want.nce, rel=RTOL), kind
                np.testing.assert_allclose(got.joint, want.joint, rtol=RTOL)
                assert ld.leep(predictions, da.from_array(labels, chunks=3000)) == (
                    pytest.approx(want.leep, rel=RTOL)
                )
    finally:
        h5.close()


def test_string_and_float_labels_as_the_in_memory_api(data):
    # NumPy labels are the whole label set: strings numbered in sorted order, integer-
    # valued floats taken; a dask array of strings cannot be numbered chunk by chunk
    theta, labels = data
    names = np.array([f"class-{k:02d}" for k in range(Y)])
    predictions = da.from_array(theta, chunks=(3000, Z))
    want = leepfast.leep(theta, labels)
    with dask.config.set(scheduler="threads"):
        assert ld.leep(predictions, names[labels]) == pytest.approx(want, rel=RTOL)
        assert ld.leep(predictions, labels.astype(float)) == pytest.approx(want, rel=RTOL)
        with pytest.raises(TypeError, match=r"^labels: got strings in a batch"):
            ld.leep(predictions, da.from_array(names[labels], chunks=3000))
