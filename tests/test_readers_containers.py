"""Containers are refused, naming the format (issue 13 item 20).

An .npz, a torch.save file, a pickle, a safetensors, HDF5, Parquet or Arrow file, a
Zarr store or a compressed file used to be read as raw binary: the error asked for
dtype and n_source, and with them the container's bytes were scored as floats. Each is
now one FileFormatError naming the file and its format, with or without dtype and
n_source, for predictions and for labels. The files are real ones where the writer is
installed (numpy, torch, pickle, gzip) and hand-made from each format's layout otherwise.
"""

import gzip
import json
import pickle
import struct

import numpy as np
import pytest

import leepfast
from leepfast import FileFormatError, cli, open_labels, open_predictions, score_files

PRED_TAIL = "not predictions; leepfast reads .npy files and raw binary dumps: "
ARRAY = "pass the array (or tensor) to leepfast, or save it with numpy.save"


@pytest.fixture
def theta(rng, make_theta):
    return make_theta(rng, 40, 6).astype(np.float32)


def write_npz(path, theta):
    np.savez(path, probs=theta, extra=theta[:2])


def write_npz_compressed(path, theta):
    np.savez_compressed(path, theta)


def write_torch(path, theta):
    torch = pytest.importorskip("torch")
    torch.save(torch.from_numpy(theta), path)


def write_torch_legacy(path, theta):
    torch = pytest.importorskip("torch")
    torch.save(torch.from_numpy(theta), path, _use_new_zipfile_serialization=False)


def write_pickle(path, theta):
    with open(path, "wb") as f:
        pickle.dump(theta, f, protocol=4)


def write_safetensors(path, theta):
    # layout: u64 little-endian header length, a JSON header (padded), the raw data
    header = {
        "probs": {
            "dtype": "F32",
            "shape": list(theta.shape),
            "data_offsets": [0, theta.nbytes],
        }
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + theta.tobytes())


def write_hdf5(path, theta, user_block=0):
    # the superblock signature, at 0 or after a user block, then (here) the data
    sig = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0])
    with open(path, "wb") as f:
        f.write(b"\x00" * user_block + sig + b"\x00" * 80 + theta.tobytes())


def write_hdf5_user_block(path, theta):
    write_hdf5(path, theta, user_block=512)


def write_parquet(path, theta):
    # "PAR1", column chunks, the footer (thrift metadata), its u32 length, "PAR1"
    footer = b"\x15\x00" * 8
    with open(path, "wb") as f:
        f.write(b"PAR1" + theta.tobytes() + footer + struct.pack("<I", len(footer)))
        f.write(b"PAR1")


def write_arrow(path, theta):
    # "ARROW1" + 2 bytes of padding, the IPC stream, the footer, its i32 length, "ARROW1"
    with open(path, "wb") as f:
        f.write(b"ARROW1\x00\x00" + theta.tobytes() + struct.pack("<i", 0) + b"ARROW1")


def write_zstd(path, theta):
    with open(path, "wb") as f:
        f.write(b"\x28\xb5\x2f\xfd\x24\x00" + theta.tobytes())


FORMATS = [
    (
        "p.npz",
        write_npz,
        "a NumPy .npz archive (arrays 'probs', 'extra')",
        "load it with numpy.load(path)[name] (never unpickled) and save each array "
        "with numpy.save, or pass the array",
    ),
    (
        "p_c.npz",
        write_npz_compressed,
        "a NumPy .npz archive (arrays 'arr_0')",
        "load it with numpy.load(path)[name] (never unpickled) and save each array "
        "with numpy.save, or pass the array",
    ),
    (
        "p.pt",
        write_torch,
        "a PyTorch file saved by torch.save (a zip with a pickle)",
        "leepfast never unpickles files: torch.load it yourself if you trust it, then "
        + ARRAY,
    ),
    (
        "p_legacy.pt",
        write_torch_legacy,
        "a PyTorch file saved by torch.save (legacy pickle format)",
        "leepfast never unpickles files: torch.load it yourself if you trust it, then "
        + ARRAY,
    ),
    (
        "p.pkl",
        write_pickle,
        "a Python pickle (protocol 4)",
        "leepfast never unpickles files: load it yourself if you trust it, then " + ARRAY,
    ),
    (
        "p.safetensors",
        write_safetensors,
        "a safetensors file",
        "load it with safetensors.numpy.load_file(path)[name], then " + ARRAY,
    ),
    (
        "p.h5",
        write_hdf5,
        "an HDF5 file",
        "read the dataset with h5py (h5py.File(path)[name][...]), then " + ARRAY,
    ),
    (
        "p_ub.h5",
        write_hdf5_user_block,
        "an HDF5 file",
        "read the dataset with h5py (h5py.File(path)[name][...]), then " + ARRAY,
    ),
    (
        "p.parquet",
        write_parquet,
        "a Parquet file",
        "read the column with pyarrow or pandas, then " + ARRAY,
    ),
    (
        "p.arrow",
        write_arrow,
        "an Arrow IPC (Feather v2) file",
        "read it with pyarrow.feather or pyarrow.ipc, then " + ARRAY,
    ),
    ("p.zst", write_zstd, "a compressed file (zstd or xz)", "decompress it first"),
]


#: what the row readers refuse (the formats they read: test_readers_formats.py)
READ = ("p.npz", "p_c.npz", "p.safetensors", "p.h5", "p_ub.h5", "p.parquet")
REFUSED_ROWS = [f for f in FORMATS if f[0] not in READ]


@pytest.mark.parametrize(
    "name, write, description, advice", REFUSED_ROWS, ids=[f[0] for f in REFUSED_ROWS]
)
@pytest.mark.parametrize("raw_args", [{}, {"dtype": "float32", "n_source": 6}])
def test_container_predictions_are_refused_naming_the_format(
    tmp_path, theta, name, write, description, advice, raw_args
):
    path = tmp_path / name
    write(path, theta)
    before = path.read_bytes()
    expected = f"predictions (file {path}): is {description}, {PRED_TAIL}{advice}"
    with pytest.raises(FileFormatError) as err:
        open_predictions(path, **raw_args)
    assert str(err.value) == expected
    assert err.value.argument == "predictions"
    with pytest.raises(FileFormatError) as err:
        score_files(path, np.zeros(len(theta), dtype=np.int64), **raw_args)
    assert str(err.value) == expected
    assert path.read_bytes() == before  # never written


@pytest.mark.parametrize("name, write, description, advice", REFUSED_ROWS[:3], ids=str)
def test_container_in_a_shard_folder_is_refused(
    tmp_path, theta, name, write, description, advice
):
    d = tmp_path / "shards"
    d.mkdir()
    np.save(d / "part-0.npy", theta)
    write(d / name, theta)
    with pytest.raises(FileFormatError, match=rf"file {d / name}\): is "):
        open_predictions(d, dtype="float32", n_source=6)


def test_cli_one_line_exit_2(tmp_path, theta, capsys):
    write_pickle(tmp_path / "p.pkl", theta)
    np.save(tmp_path / "y.npy", np.zeros(len(theta), dtype=np.int64))
    argv = ["score", str(tmp_path / "p.pkl"), "--labels", str(tmp_path / "y.npy")]
    assert cli.main(argv + ["--dtype", "float32", "--n-source", "6"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"leepfast: error: predictions (file {tmp_path / 'p.pkl'}): is a Python pickle "
        f"(protocol 4), {PRED_TAIL}leepfast never unpickles files: load it yourself "
        f"if you trust it, then {ARRAY}\n"
    )


def test_npz_named_npy_says_what_it_is(tmp_path, theta):
    write_npz(tmp_path / "p.npz", theta)
    (tmp_path / "p.npy").write_bytes((tmp_path / "p.npz").read_bytes())
    with pytest.raises(FileFormatError) as err:
        open_predictions(tmp_path / "p.npy")
    assert str(err.value) == (
        f"predictions (file {tmp_path / 'p.npy'}): not a .npy file: it does not start "
        "with the .npy magic string b'\\x93NUMPY' (it is a NumPy .npz archive (arrays "
        "'probs', 'extra'): rename it to end in .npz, which leepfast reads)"
    )


LABEL_TAIL = (
    "not integer labels as .npy or text; leepfast reads .npy files and text files "
    "with one integer per line: "
)


@pytest.mark.parametrize(
    "name, write, description, advice", FORMATS, ids=[f[0] for f in FORMATS]
)
def test_container_labels_are_refused_naming_the_format(
    tmp_path, theta, name, write, description, advice
):
    path = tmp_path / name
    write(path, (theta * 10).astype(np.int64).astype(np.float32))
    with pytest.raises(FileFormatError) as err:
        open_labels(path)
    assert str(err.value) == f"labels (file {path}): is {description}, {LABEL_TAIL}{advice}"
    assert err.value.argument == "labels"


def test_gzipped_label_text_is_refused(tmp_path):
    (tmp_path / "y.txt").write_bytes(gzip.compress(b"1\n2\n3\n"))
    with pytest.raises(FileFormatError) as err:
        open_labels(tmp_path / "y.txt")
    assert str(err.value) == (
        f"labels (file {tmp_path / 'y.txt'}): is a gzip-compressed file, "
        f"{LABEL_TAIL}decompress it first"
    )


@pytest.mark.parametrize("name", ["store.zarr", "plain"])
def test_a_broken_zarr_store_is_one_clear_error(tmp_path, theta, name):
    # a directory with Zarr metadata is one array, never a folder of raw shards (whose
    # chunk files would be read as floats); a store zarr cannot open is said so
    pytest.importorskip("zarr")
    store = tmp_path / name
    store.mkdir()
    (store / ".zarray").write_text(
        json.dumps({"shape": list(theta.shape), "zarr_format": 2})
    )
    (store / "0.0").write_bytes(theta.tobytes())
    with pytest.raises(FileFormatError) as err:
        open_predictions(store, dtype="float32", n_source=6)
    assert str(err.value).startswith(
        f"predictions (file {store}): cannot be opened as a Zarr store ("
    )


@pytest.mark.parametrize(
    "first, dtype",
    [
        (b"PK\x03\x04", np.float32),  # a zip's local header as the first float32
        (b"PAR1", np.float32),  # Parquet's magic, but not at the end
        (b"\x80\x02", np.float16),  # a pickle's opening, as one float16 value
    ],
)
def test_raw_dumps_that_start_like_a_container_are_still_read(
    tmp_path, rng, make_theta, first, dtype
):
    theta = make_theta(rng, 50, 4, dtype=dtype)
    value = np.frombuffer(first, dtype=dtype)[0]
    assert 0 < value < 0.01
    theta[0, 1] = theta[0, 1] + theta[0, 0] - value  # the row still sums to 1
    theta[0, 0] = value
    assert theta.tobytes().startswith(first)
    theta.tofile(tmp_path / "p.bin")
    y = rng.integers(0, 3, 50)
    r = score_files(tmp_path / "p.bin", y, dtype=np.dtype(dtype).name, n_source=4)
    assert r.leep == pytest.approx(leepfast.score(theta, y).leep, rel=1e-12)


def test_raw_logits_that_start_like_gzip_are_still_read(tmp_path, rng):
    logits = rng.normal(size=(30, 5)).astype(np.float16)
    logits.reshape(-1)[0] = np.frombuffer(b"\x1f\x8b", dtype=np.float16)[0]
    logits.reshape(-1)[1] = np.frombuffer(b"\x08\x00", dtype=np.float16)[0]
    assert logits.tobytes().startswith(b"\x1f\x8b\x08")
    logits.tofile(tmp_path / "z.f16")
    y = rng.integers(0, 3, 30)
    r = score_files(tmp_path / "z.f16", y, dtype="float16", n_source=5, logits=True)
    assert r.leep == pytest.approx(leepfast.score(logits, y, logits=True).leep, rel=1e-12)
