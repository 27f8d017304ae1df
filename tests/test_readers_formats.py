"""The .npz and .safetensors readers (issue 15 item 3): each round-trips against the
in-memory result, with its bad-file cases, and never modifies a file."""

import itertools
import json
import os
import struct
import zipfile

import numpy as np
import pytest

import leepfast
from leepfast import FileFormatError, _reference, cli, open_predictions, score_files
from leepfast.readers import hdf5, mapped, registry


@pytest.fixture
def data(rng, make_theta):
    theta = make_theta(rng, 1000, 7)
    return theta, rng.integers(0, 4, len(theta))


def same(a, b, rel=1e-15):
    assert a.leep == pytest.approx(b.leep, rel=rel, abs=0)
    assert a.nce == pytest.approx(b.nce, rel=rel, abs=0)
    assert a.n_samples == b.n_samples and a.n_source == b.n_source


def write_safetensors(path, tensors, metadata=None, pad=True):
    """tensors: name -> (dtype code, array of the stored bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (code, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_header(path, header, data=b""):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


# ---------------------------------------------------------------------------------------
# .npz


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8", ">f4", ">f8"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npz_stored_round_trips(tmp_path, data, dtype, order):
    theta, y = data
    arr = np.array(theta.astype(dtype), order=order)
    np.savez(tmp_path / "p.npz", probs=arr)
    before = (tmp_path / "p.npz").read_bytes()
    expected = leepfast.score(arr, y)
    preds = open_predictions(tmp_path / "p.npz")
    assert type(preds.files[0]).__name__ == "PredictionFile"  # mapped in place
    assert preds.files[0].key == "probs" and preds.files[0].format == "npz"
    same(score_files(preds, y, block_size=97), expected)
    same(score_files(tmp_path / "p.npz", y), expected)
    assert (tmp_path / "p.npz").read_bytes() == before


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8"])
def test_npz_stored_member_at_an_odd_offset_is_viewed(tmp_path, data, backend, dtype):
    # numpy.savez puts a member's data 30 + len(name) + 20 + 128 bytes into the zip:
    # odd for "p.npy"; the second member lands wherever the first one ends
    theta, y = data
    arr = theta.astype(dtype)
    np.savez(tmp_path / "p.npz", p=arr, q=arr[::-1])
    npy = tmp_path / "p.npy"
    np.save(npy, arr)
    for key, rows in (("p", arr), ("q", arr[::-1])):
        preds = open_predictions(tmp_path / "p.npz", key=key)
        f = preds.files[0]
        if key == "p":
            assert f.offset % 2 == 1 and not f.array.flags.aligned
        blocks = [block for _, _, _, block in preds.blocks(97)]
        assert all(np.shares_memory(b, f.array) for b in blocks)  # views, no copies
        np.testing.assert_array_equal(np.concatenate(blocks), rows)
        for size in (None, 97):
            got = score_files(preds, y, backend=backend, block_size=size)
            same(got, leepfast.score(rows, y, backend=backend, block_size=size), 0)
    same(
        score_files(tmp_path / "p.npz", y, key="p", backend=backend),
        score_files(npy, y, backend=backend),
        0,
    )


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8", ">f8"])
def test_npz_compressed_is_streamed(tmp_path, data, dtype):
    theta, y = data
    arr = theta.astype(dtype)
    np.savez_compressed(tmp_path / "c.npz", arr)
    expected = leepfast.score(arr, y)
    preds = open_predictions(tmp_path / "c.npz")
    assert type(preds.files[0]).__name__ == "CompressedMember"
    # a block is valid until the next is asked for (one reused buffer): copied here
    blocks = [(start, block.copy()) for _, _, start, block in preds.blocks(97)]
    assert [start for start, _ in blocks] == list(range(0, 1000, 97))
    assert max(len(b) for _, b in blocks) == 97  # one block at a time
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), arr)
    same(score_files(preds, y, block_size=97), expected)
    same(score_files(tmp_path / "c.npz", y, logits=False, backend="numpy"), expected)


def test_npz_logits_and_shards(tmp_path, rng):
    logits = rng.normal(size=(600, 5)) * 3
    y = rng.integers(0, 3, 600)
    np.savez(tmp_path / "part-1.npz", logits=logits[:250])
    np.savez_compressed(tmp_path / "part-2.npz", logits=logits[250:])
    expected = leepfast.score(logits, y, logits=True)
    got = score_files(tmp_path / "part-*.npz", y, key="logits", logits=True)
    same(got, expected, rel=1e-13)


def test_npz_key_is_needed_and_checked(tmp_path, data):
    theta, y = data
    np.savez(tmp_path / "p.npz", probs=theta, extra=theta[:2])
    with pytest.raises(TypeError) as err:
        open_predictions(tmp_path / "p.npz")
    assert str(err.value) == (
        f"key: predictions (file {tmp_path / 'p.npz'}) holds 2 arrays ('probs', "
        "'extra'); name the one to read with key="
    )
    with pytest.raises(FileFormatError) as err:
        open_predictions(tmp_path / "p.npz", key="prob")
    assert str(err.value) == (
        f"predictions (file {tmp_path / 'p.npz'}): holds no array 'prob'; it holds "
        "'probs', 'extra'"
    )
    with pytest.raises(TypeError, match="^key: expected a str, got int$"):
        open_predictions(tmp_path / "p.npz", key=1)
    same(score_files(tmp_path / "p.npz", y, key="probs"), leepfast.score(theta, y))


def test_npz_bad_members(tmp_path, data):
    theta, _ = data
    np.savez(tmp_path / "i.npz", y=np.arange(10))
    with pytest.raises(FileFormatError) as err:
        open_predictions(tmp_path / "i.npz")
    assert str(err.value) == (
        f"predictions (file {tmp_path / 'i.npz'}[y]): holds dtype '<i8'; expected "
        "float16, float32 or float64 predictions"
    )
    np.savez(tmp_path / "v.npz", v=theta[0])
    with pytest.raises(FileFormatError, match=r"shape \(7,\); expected shape"):
        open_predictions(tmp_path / "v.npz")
    np.savez_compressed(tmp_path / "f.npz", np.asfortranarray(theta))
    with pytest.raises(FileFormatError, match="compressed Fortran-ordered array"):
        open_predictions(tmp_path / "f.npz")
    # a pickled (object) member is refused from its header, never unpickled
    np.savez(tmp_path / "o.npz", o=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(FileFormatError, match="holds Python objects"):
        open_predictions(tmp_path / "o.npz")
    # a member whose header claims more data than it holds
    good = tmp_path / "good.npy"
    np.save(good, theta)
    raw = good.read_bytes()
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as z:
        z.writestr("t.npy", raw[:-8])
    with pytest.raises(FileFormatError, match=r"t.npz\[t\]\): truncated"):
        open_predictions(tmp_path / "t.npz")


def test_npz_damaged_members_are_named(tmp_path, data):
    # zipfile's and zlib's errors end in one FileFormatError naming the member
    theta, y = data
    np.savez(tmp_path / "s.npz", p=theta)
    raw = bytearray((tmp_path / "s.npz").read_bytes())
    raw[30] ^= 0x20  # the member's name in its local header: "P.npy"
    (tmp_path / "s.npz").write_bytes(bytes(raw))
    with pytest.raises(FileFormatError) as err:
        open_predictions(tmp_path / "s.npz")
    assert str(err.value).startswith(
        f"predictions (file {tmp_path / 's.npz'}[p]): is a damaged zip member (File "
        "name in directory 'p.npy' and header b'P.npy' differ.)"
    )
    rows = np.random.default_rng(0).random((4000, 7))
    np.savez_compressed(tmp_path / "c.npz", p=rows / rows.sum(axis=1, keepdims=True))
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        end = z.infolist()[0].compress_size  # of the member's deflate stream
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    raw[30 + 5 + 20 + end - 40] ^= 0xFF  # in its last block: deflate or the CRC fails
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    preds = open_predictions(tmp_path / "c.npz")
    with pytest.raises(FileFormatError, match=r"c.npz\): member 'p.npy' is damaged in"):
        score_files(preds, np.zeros(4000, dtype=np.int64), block_size=500)


def test_npz_deflated_member_is_checked_whole(tmp_path, data):
    # a deflated member is inflated by leepfast: its CRC-32 and its end are checked
    # when the last block is read; bzip2 and lzma members are read through zipfile
    theta, y = data
    path = tmp_path / "c.npz"
    np.savez_compressed(path, p=theta)
    same(score_files(path, y, block_size=97), leepfast.score(theta, y))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        crc = z.infolist()[0].CRC.to_bytes(4, "little")
    assert raw.count(crc) == 2  # in the local header and the central directory
    path.write_bytes(bytes(raw).replace(crc, bytes(b ^ 1 for b in crc)))
    preds = open_predictions(path)
    blocks = preds.blocks(97)
    assert [start for _, _, start, _ in itertools.islice(blocks, 10)][-1] == 873
    with pytest.raises(FileFormatError) as err:
        next(blocks)
    assert str(err.value) == (
        f"predictions (file {path}): member 'p.npy' is damaged in rows 970 to 999 "
        "(Bad CRC-32: its data is not what was written)"
    )
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        with zipfile.ZipFile(tmp_path / "m.npz", "w", method) as z:
            with z.open("p.npy", "w") as member:
                np.lib.format.write_array(member, theta)
        preds = open_predictions(tmp_path / "m.npz")
        assert preds.files[0].begin is None
        same(score_files(preds, y, block_size=97), leepfast.score(theta, y))
    # a damaged archive named .npz is refused as one, not read as raw floats
    (tmp_path / "d.npz").write_bytes(path.read_bytes()[:-30])
    with pytest.raises(FileFormatError) as err:
        open_predictions(tmp_path / "d.npz")
    assert str(err.value).startswith(
        f"predictions (file {tmp_path / 'd.npz'}): is a damaged zip archive ("
    )


def test_npz_rewritten_between_passes_is_refused(tmp_path, data):
    theta, y = data
    np.savez_compressed(tmp_path / "c.npz", theta)
    preds = open_predictions(tmp_path / "c.npz")
    np.savez_compressed(tmp_path / "c.npz", theta[::-1])
    with pytest.raises(FileFormatError, match="changed since it was opened"):
        score_files(preds, y)


def test_npz_of_features(tmp_path, rng):
    f = rng.normal(size=(300, 6))
    y = rng.integers(0, 3, 300)
    np.savez_compressed(tmp_path / "f.npz", feats=f)
    assert leepfast.h_score(tmp_path / "f.npz", y) == pytest.approx(
        leepfast.h_score(f, y), rel=1e-12
    )
    with pytest.raises(FileFormatError) as err:
        leepfast.logme(tmp_path / "f.npz", y, n_features=5)
    assert str(err.value) == (
        f"features (file {tmp_path / 'f.npz'}): has 6 features, but n_features=5 was given"
    )


# ---------------------------------------------------------------------------------------
# .safetensors


@pytest.mark.parametrize("code, dtype", [("F16", "<f2"), ("F32", "<f4"), ("F64", "<f8")])
def test_safetensors_round_trips(tmp_path, data, code, dtype):
    theta, y = data
    arr = theta.astype(dtype)
    path = tmp_path / "p.safetensors"
    write_safetensors(path, {"probs": (code, arr)}, metadata={"format": "np"})
    before = path.read_bytes()
    preds = open_predictions(path)
    assert preds.files[0].key == "probs" and preds.files[0].stored == arr.dtype.name
    same(score_files(preds, y, block_size=101), leepfast.score(arr, y))
    assert path.read_bytes() == before


def test_safetensors_unaligned_and_several_tensors(tmp_path, data):
    theta, y = data
    path = tmp_path / "p.safetensors"
    # an unpadded header puts the data at an odd offset: viewed all the same
    write_safetensors(
        path, {"x": ("F32", theta[:3].astype("<f4")), "p": ("F64", theta)}, pad=False
    )
    with pytest.raises(TypeError, match=r"holds 2 tensors \('p', 'x'\); name the one"):
        open_predictions(path)
    same(score_files(path, y, key="p"), leepfast.score(theta, y))
    with pytest.raises(FileFormatError, match="holds no tensor 'q'; it holds 'p', 'x'"):
        open_predictions(path, key="q")


def test_safetensors_bfloat16_is_widened_exactly(tmp_path, data):
    torch = pytest.importorskip("torch")
    theta, y = data
    tensor = torch.from_numpy(theta.astype(np.float32)).to(torch.bfloat16)
    bits = tensor.view(torch.int16).numpy().view("<u2")
    path = tmp_path / "p.safetensors"
    write_safetensors(path, {"p": ("BF16", bits)})
    preds = open_predictions(path)
    assert preds.files[0].stored == "bfloat16" and preds.files[0].nbytes == bits.nbytes
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    # the rows sum to 1 only within bfloat16's tolerance, as for a bfloat16 tensor
    expected = leepfast.score(tensor, y)
    for backend in ("numpy", "cython"):
        got = score_files(path, y, backend=backend)
        same(got, expected, rel=1e-13)
        assert got.leep == pytest.approx(_reference.leep(widened, y), rel=1e-13)
        assert got.nce == pytest.approx(_reference.nce(widened, y), rel=1e-13)


@pytest.mark.parametrize(
    "header, data, message",
    [
        (b"{not json", b"", "safetensors header is not valid JSON"),
        (b"[1, 2]       ", b"", "safetensors header is not a JSON object"),
        ({}, b"", "holds no tensors"),
        (
            {"p": {"dtype": "F32", "shape": [2, 2]}},
            b"\0" * 16,
            "safetensors entry 'p' is ",
        ),
        (
            {"p": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 32]}},
            b"\0" * 16,
            r"tensor 'p' has data_offsets \[0, 32\]; expected offsets inside its 16",
        ),
        (
            {"p": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}},
            b"\0" * 16,
            r"shape \(2, 3\) of F32 is 24 bytes, but its data_offsets span 16",
        ),
        (
            {"p": {"dtype": "I32", "shape": [2, 2], "data_offsets": [0, 16]}},
            b"\0" * 16,
            "tensor 'p' has dtype I32; expected F16, F32, F64 or BF16 predictions",
        ),
        (
            {"p": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
            b"\0" * 16,
            r"has shape \(4,\); expected shape \(n_samples, n_source\)",
        ),
        (
            {"p": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]}},
            b"",
            "holds no data",
        ),
    ],
)
def test_safetensors_bad_headers(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    write_header(path, header, data)
    with pytest.raises(FileFormatError, match=message) as err:
        open_predictions(path)
    assert str(err.value).startswith(f"predictions (file {path}): ")
    assert err.value.argument == "predictions"


def test_safetensors_header_length_is_limited(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(FileFormatError, match="header length is 1099511627776 bytes"):
        open_predictions(path)
    path.write_bytes(struct.pack("<Q", 100) + b"{}")
    with pytest.raises(FileFormatError, match="truncated safetensors file"):
        open_predictions(path)


def test_safetensors_found_by_content_whatever_its_name(tmp_path, data):
    theta, y = data
    write_safetensors(tmp_path / "dump.bin", {"p": ("F64", theta)})
    assert registry.reader_of(tmp_path / "dump.bin").NAME == "safetensors"
    same(score_files(tmp_path / "dump.bin", y), leepfast.score(theta, y))


def test_key_on_a_one_array_file_is_refused(tmp_path, data):
    theta, y = data
    np.save(tmp_path / "p.npy", theta)
    with pytest.raises(TypeError) as err:
        score_files(tmp_path / "p.npy", y, key="probs")
    assert str(err.value) == (
        f"key: predictions (file {tmp_path / 'p.npy'}) holds one array; key= names an "
        "array of a .npz or a tensor of a safetensors file"
    )


def test_cli_reads_npz_and_safetensors_with_key(tmp_path, data, capsys):
    theta, y = data
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "p.npz", probs=theta, extra=theta[:2])
    write_safetensors(tmp_path / "p.safetensors", {"probs": ("F64", theta)})
    expected = leepfast.score(theta, y)
    for name in ("p.npz", "p.safetensors"):
        argv = ["score", str(tmp_path / name), "--labels", str(tmp_path / "y.npy")]
        assert cli.main(argv + ["--key", "probs", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["leep"] == pytest.approx(expected.leep, rel=1e-15)
    assert cli.main(argv[:2] + ["--labels", str(tmp_path / "y.npy"), "--key", "q"]) == 2
    assert capsys.readouterr().err == (
        f"leepfast: error: predictions (file {tmp_path / 'p.safetensors'}): holds no "
        "tensor 'q'; it holds 'probs'\n"
    )
    assert cli.main(["score", str(tmp_path / "p.npz"), "--labels", "y.npy"]) == 2
    assert capsys.readouterr().err.startswith(
        f"leepfast: error: --key: predictions (file {tmp_path / 'p.npz'}) holds 2 arrays"
    )


def test_rank_takes_a_key(tmp_path, data):
    theta, y = data
    np.savez(tmp_path / "a.npz", probs=theta, extra=theta[:2])
    np.savez(tmp_path / "b.npz", probs=theta[:, ::-1], extra=theta[:2])
    r = leepfast.rank({"a": tmp_path / "a.npz", "b": tmp_path / "b.npz"}, y, key="probs")
    assert {row["model"]: row["leep"] for row in r.rows} == pytest.approx(
        {"a": leepfast.leep(theta, y), "b": leepfast.leep(theta[:, ::-1], y)}, rel=1e-15
    )


# ---------------------------------------------------------------------------------------
# HDF5 (h5py, in the test extra)


@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8", ">f8"])
@pytest.mark.parametrize("storage", ["contiguous", "chunked", "gzip"])
def test_hdf5_round_trips(tmp_path, data, h5py, dtype, storage):
    theta, y = data
    arr = theta.astype(dtype)
    path = tmp_path / "p.h5"
    options = {
        "contiguous": {},
        "chunked": {"chunks": (64, 7)},
        "gzip": {"chunks": (100, 7), "compression": "gzip"},
    }[storage]
    with h5py.File(path, "w") as f:
        f.create_dataset("model/probs", data=arr, **options)
    before = path.read_bytes()
    preds = open_predictions(path)
    assert preds.files[0].key == "model/probs" and preds.files[0].stored == arr.dtype.name
    same(score_files(preds, y, block_size=97), leepfast.score(arr, y))
    same(score_files(path, y), leepfast.score(arr, y))
    assert path.read_bytes() == before


def test_hdf5_contiguous_dataset_is_memory_mapped(tmp_path, data, h5py):
    # HDF5's default layout is one run of raw values: mapped at its offset, so a
    # compiled backend streams views of it, as of a .npy (no copy, the same speed)
    theta, y = data
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", data=theta)
        f.create_dataset("chunked", data=theta, chunks=(64, theta.shape[1]))
        f.create_dataset("unwritten", shape=theta.shape, dtype="f8")  # no storage yet
        offset = f["contiguous"].id.get_offset()
    rows = open_predictions(path, key="contiguous").files[0]
    assert isinstance(rows, mapped.PredictionFile) and rows.offset == offset
    assert (rows.format, rows.key) == ("hdf5", "contiguous")
    (_, first), *_ = rows.blocks(large_views=True)
    assert np.shares_memory(first, rows.array) and np.array_equal(first, theta)
    same(score_files(path, y, key="contiguous"), leepfast.score(theta, y))
    assert isinstance(open_predictions(path, key="unwritten").files[0], hdf5.Dataset)
    rows = open_predictions(path, key="chunked").files[0]  # raw chunks of whole rows
    assert isinstance(rows, mapped.PredictionFile) and rows.runs is None
    same(score_files(path, y, key="chunked"), leepfast.score(theta, y))


def write_interleaved(h5py, path, arrays, step, dtype="<f8"):
    """Datasets appended to in turns, ``step`` rows at a time (as a dumping loop does):
    the chunks of each lie between the others'."""
    with h5py.File(path, "w") as f:
        out = {
            key: f.create_dataset(
                key,
                shape=(0, a.shape[1]),
                maxshape=(None, a.shape[1]),
                chunks=(step, a.shape[1]),
                dtype=dtype,
            )
            for key, a in arrays.items()
        }
        for start in range(0, len(next(iter(arrays.values()))), step):
            for key, a in arrays.items():
                part = a[start : start + step]
                out[key].resize(start + len(part), axis=0)
                out[key][start:] = part
                f.flush()  # the chunk is written now, not when the chunk cache is full


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8", ">f4"])
def test_hdf5_raw_chunks_are_mapped_in_runs(tmp_path, data, h5py, backend, dtype):
    # chunks without filters, as wide as the dataset: raw rows at offsets of the file,
    # mapped in runs of adjacent chunks (a run ends where the other dataset's begin)
    theta, y = data
    arr = theta.astype(dtype)
    path = tmp_path / "p.h5"
    write_interleaved(h5py, path, {"p": arr, "q": arr[::-1]}, 96, dtype)
    before = path.read_bytes()
    for key, rows in (("p", arr), ("q", arr[::-1])):
        preds = open_predictions(path, key=key)
        f = preds.files[0]
        assert isinstance(f, mapped.PredictionFile) and len(f.runs) > 2
        assert [first for first, _, _ in f.runs] == sorted({r[0] for r in f.runs})
        assert sum(n for _, n, _ in f.runs) == 1000 and f.array is None
        ends = {first + n for first, n, _ in f.runs}
        got = [(start, block.copy()) for _, _, start, block in preds.blocks(97)]
        assert all(len(b) <= 97 for _, b in got)
        assert all(  # no block spans two runs
            not any(start < end < start + len(b) for end in ends) for start, b in got
        )
        np.testing.assert_array_equal(np.concatenate([b for _, b in got]), rows)
        if arr.dtype.isnative:  # views of the map, no copies
            pieces = f._mapped()
            for _, _, _, block in preds.blocks(large_views=True):
                assert any(np.shares_memory(block, p) for _, p in pieces)
        for size in (None, 97):
            expected = leepfast.score(rows, y, backend=backend, block_size=size)
            same(score_files(preds, y, backend=backend, block_size=size), expected)
    assert path.read_bytes() == before


def test_hdf5_chunks_that_are_not_raw_rows_are_read_through_h5py(tmp_path, data, h5py):
    theta, y = data
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("narrow", data=theta, chunks=(64, 3))  # chunks split the rows
        f.create_dataset("gzip", data=theta, chunks=(64, 7), compression="gzip")
        f.create_dataset("shuffle", data=theta, chunks=(64, 7), shuffle=True)
        f.create_dataset("fletcher", data=theta, chunks=(64, 7), fletcher32=True)
        half = f.create_dataset("half", shape=theta.shape, chunks=(64, 7), dtype="f8")
        half[:500] = theta[:500]  # the chunks past row 512 were never written
        f.create_dataset("raw", data=theta, chunks=(64, 7))
        raw = f["raw"]
        assert hdf5._chunk_runs(raw, 10**9) == [(0, 1000, raw.id.get_chunk_info(0)[2])]
        # a chunk past the end of the file (as the size given says): not mapped
        assert hdf5._chunk_runs(raw, raw.id.get_chunk_info(15)[2] + 64 * 56 - 1) is None
    for key in ("narrow", "gzip", "shuffle", "fletcher", "half"):
        f = open_predictions(path, key=key).files[0]
        assert isinstance(f, hdf5.Dataset), key
        if key != "half":
            same(score_files(path, y, key=key), leepfast.score(theta, y))
    assert isinstance(open_predictions(path, key="raw").files[0], mapped.PredictionFile)


def test_hdf5_blocks_are_whole_chunks(tmp_path, rng, h5py):
    logits = rng.normal(size=(100_000, 7))  # logits blocks of 2 MiB: several here
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("p", data=logits, chunks=(96, 7), compression="gzip")
        f.create_dataset("raw", data=logits, chunks=(96, 7))
    preds = open_predictions(tmp_path / "p.h5", key="p")
    assert isinstance(preds.files[0], hdf5.Dataset)
    starts = [start for _, _, start, _ in preds.blocks(logits=True)]
    assert len(starts) > 2 and starts[1] % 96 == 0
    assert starts == list(range(0, 100_000, starts[1]))
    # raw chunks are mapped (nothing to decompress): a block starts at each run of
    # adjacent chunks
    preds = open_predictions(tmp_path / "p.h5", key="raw")
    runs = preds.files[0].runs or [(0, 100_000, None)]
    starts = [start for _, _, start, _ in preds.blocks(logits=True)]
    assert {first for first, _, _ in runs} <= set(starts)


def test_hdf5_key_and_bad_datasets(tmp_path, data, h5py):
    theta, y = data
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=theta)
        f.create_dataset("g/ints", data=np.arange(10))
        f.create_dataset("g/vector", data=theta[0])
    with pytest.raises(TypeError) as err:
        open_predictions(path)
    assert str(err.value) == (
        f"key: predictions (file {path}) holds 3 datasets ('a', 'g/ints', 'g/vector'); "
        "name the one to read with key="
    )
    with pytest.raises(FileFormatError, match="holds no dataset 'b'; it holds 'a', 'g/"):
        open_predictions(path, key="b")
    with pytest.raises(FileFormatError, match="holds no dataset 'g'"):
        open_predictions(path, key="g")  # a group, not a dataset
    with pytest.raises(FileFormatError) as err:
        open_predictions(path, key="g/ints")
    assert str(err.value) == (
        f"predictions (file {path}[g/ints]): holds dtype int64; expected float16, "
        "float32 or float64 predictions"
    )
    with pytest.raises(FileFormatError, match=r"has shape \(7,\); expected shape"):
        open_predictions(path, key="g/vector")
    same(score_files(path, y, key="/a"), leepfast.score(theta, y))


def test_hdf5_signature_without_a_valid_file(tmp_path, h5py):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.ones(64).tobytes())
    with pytest.raises(FileFormatError, match=rf"^predictions \(file {path}\): cannot be"):
        open_predictions(path)


def test_hdf5_rewritten_between_passes_is_refused(tmp_path, data, h5py):
    theta, y = data
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("p", data=theta)
    preds = open_predictions(tmp_path / "p.h5")
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("p", data=theta[::-1])
    with pytest.raises(FileFormatError, match="changed since it was opened"):
        score_files(preds, y)


@pytest.mark.parametrize("layout", ["contiguous", "raw chunks", "gzip"])
def test_hdf5_written_to_while_read_is_refused(tmp_path, data, h5py, layout):
    theta, _ = data
    path = tmp_path / "p.h5"
    if layout == "raw chunks":
        write_interleaved(h5py, path, {"p": theta, "q": theta}, 96)
    else:
        with h5py.File(path, "w") as f:
            gzip = {"chunks": (96, 7), "compression": "gzip"} if layout == "gzip" else {}
            f.create_dataset("p", data=theta, **gzip)
    preds = open_predictions(path, key="p")
    blocks = preds.blocks(96)
    next(blocks)
    if layout == "gzip":  # h5py holds it open: HDF5 refuses a writer in this process
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1000))
    else:
        with h5py.File(path, "r+") as f:  # in place: the same inode, a new mtime
            f["p"][500] = theta[0]
    with pytest.raises(FileFormatError, match="changed since it was opened"):
        list(blocks)


def spoil(path, at, n=4):
    """Overwrite n bytes of a file at ``at`` with 0xff."""
    raw = bytearray(path.read_bytes())
    raw[at : at + n] = b"\xff" * n
    path.write_bytes(bytes(raw))


def test_hdf5_damaged_chunk_is_named(tmp_path, data, h5py):
    theta, y = data
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("p", data=theta, chunks=(100, 7), compression="gzip")
        at = f["p"].id.get_chunk_info(3).byte_offset
    spoil(path, at + 40)
    with pytest.raises(FileFormatError) as err:
        score_files(path, y, block_size=100)
    assert str(err.value).startswith(
        f"predictions (file {path}): dataset '/p' cannot be read in rows 300 to 399 ("
    )


def test_hdf5_of_features_and_in_the_cli(tmp_path, rng, h5py, capsys):
    f = rng.normal(size=(300, 6))
    y = rng.integers(0, 3, 300)
    with h5py.File(tmp_path / "f.h5", "w") as h:
        h.create_dataset("feats", data=f, chunks=(50, 6), compression="gzip")
    assert leepfast.logme(tmp_path / "f.h5", y) == pytest.approx(
        leepfast.logme(f, y), rel=1e-12
    )
    theta = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
    with h5py.File(tmp_path / "p.h5", "w") as h:
        h.create_dataset("p", data=theta)
    np.save(tmp_path / "y.npy", y)
    argv = ["score", str(tmp_path / "p.h5"), "--labels", str(tmp_path / "y.npy")]
    assert cli.main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["leep"] == pytest.approx(leepfast.leep(theta, y), rel=1e-15)


def test_feature_scores_take_a_key(tmp_path, rng):
    f = rng.normal(size=(200, 5))
    y = rng.integers(0, 3, 200)
    np.savez(tmp_path / "f.npz", feats=f, other=f[:3])
    for score in (leepfast.h_score, leepfast.regularized_h_score, leepfast.logme):
        assert score(tmp_path / "f.npz", y, key="feats") == pytest.approx(
            score(f, y), rel=1e-12
        )
    with pytest.raises(TypeError, match=r"^key: features \(file .*\) holds 2 arrays"):
        leepfast.logme(tmp_path / "f.npz", y)


# ---------------------------------------------------------------------------------------
# Parquet (pyarrow, in the test extra)


@pytest.fixture
def arrow():
    pa = pytest.importorskip("pyarrow")
    return pa, pytest.importorskip("pyarrow.parquet")


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8"])
@pytest.mark.parametrize("layout", ["fixed list", "list", "columns"])
def test_parquet_round_trips(tmp_path, data, arrow, dtype, layout):
    pa, pq = arrow
    theta, y = data
    arr = theta.astype(dtype)
    if layout == "fixed list":
        values = pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])
        table = pa.table({"id": np.arange(len(arr)), "probs": values})
    elif layout == "list":
        offsets = pa.array(np.arange(0, arr.size + 1, arr.shape[1], dtype=np.int32))
        table = pa.table(
            {"probs": pa.ListArray.from_arrays(offsets, pa.array(arr.ravel()))}
        )
    else:
        table = pa.table({f"class {j}": arr[:, j] for j in range(arr.shape[1])})
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, row_group_size=300)
    before = path.read_bytes()
    preds = open_predictions(path)
    assert preds.n_samples == 1000 and preds.n_source == 7
    assert preds.files[0].stored == np.dtype(dtype).name
    same(score_files(preds, y, block_size=97), leepfast.score(arr, y))
    same(score_files(path, y), leepfast.score(arr, y))
    assert path.read_bytes() == before


@pytest.mark.parametrize("layout", ["fixed list", "list", "columns"])
def test_parquet_blocks_are_row_groups(tmp_path, data, arrow, layout):
    # a list column's values are pyarrow's buffer, viewed (read-only), not copied; a
    # row group is one block when the backend takes views of any size
    pa, pq = arrow
    theta, _ = data
    if layout == "columns":
        table = pa.table({f"c{j}": theta[:, j] for j in range(theta.shape[1])})
    else:
        values = pa.array(theta.ravel())
        if layout == "list":
            offsets = pa.array(np.arange(0, theta.size + 1, 7, dtype=np.int32))
            column = pa.ListArray.from_arrays(offsets, values)
        else:
            column = pa.FixedSizeListArray.from_arrays(values, theta.shape[1])
        table = pa.table({"p": column})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=300)
    preds = open_predictions(tmp_path / "p.parquet")
    blocks = [(start, block) for _, _, start, block in preds.blocks(large_views=True)]
    assert [start for start, _ in blocks] == [0, 300, 600, 900]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), theta)
    assert all(b.flags.c_contiguous for _, b in blocks)
    assert all(b.flags.writeable == (layout == "columns") for _, b in blocks)
    starts = [start for _, _, start, _ in preds.blocks(97)]
    assert starts == [0, 97, 194, 291, 300, 397, 494, 591, 600, 697, 794, 891, 900, 997]


def test_parquet_bad_tables(tmp_path, data, arrow):
    pa, pq = arrow
    theta, y = data
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"a": np.arange(3), "b": np.ones(3)}), path)
    with pytest.raises(FileFormatError, match=r"holds columns \(a: int64, b: double\)"):
        open_predictions(path)
    with pytest.raises(FileFormatError, match=r"p.parquet\[a\]\): column has type int64"):
        open_predictions(path, key="a")
    with pytest.raises(FileFormatError, match="holds no column 'c'; it holds 'a', 'b'"):
        open_predictions(path, key="c")
    ragged = pa.array([[0.5, 0.5], [1.0], [0.25, 0.75]])
    pq.write_table(pa.table({"p": ragged}), path)
    with pytest.raises(
        FileFormatError, match="row 1 has 1 values; expected 2, as in row 0"
    ):
        score_files(path, np.zeros(3, dtype=np.int64))
    nulls = pa.array([[0.5, 0.5], None, [0.25, 0.75]])
    pq.write_table(pa.table({"p": nulls}), path)
    with pytest.raises(FileFormatError, match="row 1 is null"):
        score_files(path, np.zeros(3, dtype=np.int64))
    pq.write_table(pa.table({"a": [0.5, None], "b": [0.5, 0.5]}), path)
    with pytest.raises(FileFormatError, match="row 1 holds a null value"):
        score_files(path, np.zeros(2, dtype=np.int64))
    (tmp_path / "fake.parquet").write_bytes(b"PAR1" + np.ones(8).tobytes() + b"PAR1")
    with pytest.raises(FileFormatError, match="cannot be opened as Parquet"):
        open_predictions(tmp_path / "fake.parquet")


def test_parquet_damaged_page_is_named(tmp_path, data, arrow):
    pa, pq = arrow
    theta, y = data
    path = tmp_path / "p.parquet"
    values = pa.FixedSizeListArray.from_arrays(pa.array(theta.ravel()), 7)
    pq.write_table(pa.table({"p": values}), path, row_group_size=300)
    column = pq.ParquetFile(path).metadata.row_group(2).column(0)
    spoil(path, column.dictionary_page_offset or column.data_page_offset)
    with pytest.raises(FileFormatError) as err:
        score_files(path, y)
    assert str(err.value).startswith(
        f"predictions (file {path}): row group 2 (rows from 600) cannot be read ("
    )


def test_parquet_logits_features_and_cli(tmp_path, rng, arrow, capsys):
    pa, pq = arrow
    f = rng.normal(size=(400, 6))
    y = rng.integers(0, 3, 400)
    values = pa.FixedSizeListArray.from_arrays(pa.array(f.ravel()), 6)
    pq.write_table(pa.table({"x": values}), tmp_path / "f.parquet", row_group_size=64)
    assert leepfast.logme(tmp_path / "f.parquet", y) == pytest.approx(
        leepfast.logme(f, y), rel=1e-12
    )
    same(
        score_files(tmp_path / "f.parquet", y, logits=True),
        leepfast.score(f, y, logits=True),
        rel=1e-13,
    )
    np.save(tmp_path / "y.npy", y)
    argv = ["score", str(tmp_path / "f.parquet"), "--labels", str(tmp_path / "y.npy")]
    assert cli.main(argv + ["--logits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["leep"] == pytest.approx(leepfast.leep(f, y, logits=True), rel=1e-13)


# ---------------------------------------------------------------------------------------
# Zarr (zarr, in the test extra)


@pytest.fixture
def zarr():
    return pytest.importorskip("zarr")


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8", ">f8"])
def test_zarr_round_trips(tmp_path, data, zarr, dtype):
    theta, y = data
    arr = theta.astype(dtype)
    store = tmp_path / "p.zarr"
    z = zarr.create_array(store=str(store), shape=arr.shape, chunks=(96, 7), dtype=dtype)
    z[:] = arr
    preds = open_predictions(store)
    assert preds.files[0].format == "zarr" and preds.files[0].key is None
    same(score_files(preds, y, block_size=97), leepfast.score(arr, y))
    same(score_files(store, y), leepfast.score(arr, y))
    starts = [start for _, _, start, _ in open_predictions(store).blocks(logits=True)]
    assert starts == [0]  # 1000 rows: one block of whole chunks


def test_zarr_group_key_and_bad_arrays(tmp_path, data, zarr):
    theta, y = data
    store = tmp_path / "g.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("model/probs", shape=theta.shape, chunks=(100, 7), dtype="f8")[:] = (
        theta
    )
    group.create_array("ints", shape=(3, 2), dtype="i4")
    with pytest.raises(TypeError) as err:
        open_predictions(store)
    assert str(err.value) == (
        f"key: predictions (file {store}) holds 2 arrays ('ints', 'model/probs'); name "
        "the one to read with key="
    )
    same(score_files(store, y, key="/model/probs"), leepfast.score(theta, y))
    with pytest.raises(FileFormatError) as err:
        open_predictions(store, key="ints")
    assert str(err.value) == (
        f"predictions (file {store}[ints]): holds dtype int32; expected float16, "
        "float32 or float64 predictions"
    )
    with pytest.raises(FileFormatError, match="holds no array 'nope'"):
        open_predictions(store, key="nope")


@pytest.mark.parametrize(
    "zarr_format, codec", [(3, "zstd"), (3, "blosc"), (2, "zstd"), (2, "blosc")]
)
@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8"])
def test_zarr_zstd_and_blosc_chunks_are_decoded_into_the_block(
    tmp_path, data, zarr, backend, zarr_format, codec, dtype
):
    # zarr 3's default codecs (bytes, zstd) and v2's usual compressors: each chunk
    # decompressed straight into the block; in a group (key=), with a chunk never
    # written (its fill value, through zarr) and a last chunk past the last row
    import numcodecs
    from zarr.codecs import BloscCodec

    theta, y = data
    fill = 1 / 7
    full = np.concatenate([theta, np.full((3, 7), fill)]).astype(dtype)
    full[192:288] = fill  # the chunk never written
    y = np.concatenate([y, [0, 1, 2]])
    if zarr_format == 3:
        compressor = "auto" if codec == "zstd" else BloscCodec()
    else:
        compressor = numcodecs.get_codec({"id": codec})
    store = tmp_path / "g.zarr"
    group = zarr.open_group(str(store), mode="w", zarr_format=zarr_format)
    z = group.create_array(
        "m/p",
        shape=full.shape,
        chunks=(96, 7),
        dtype=dtype,
        fill_value=fill,
        compressors=compressor,
    )
    z[:192] = full[:192]
    z[288:] = full[288:]
    preds = open_predictions(store, key="m/p")
    f = preds.files[0]
    assert f.codec == codec
    got = [(start, block.copy()) for _, _, start, block in preds.blocks(192)]
    assert [start for start, _ in got] == list(range(0, 1003, 192))
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), full)
    same(
        score_files(preds, y, backend=backend),
        leepfast.score(full, y, backend=backend),
        1e-14,
    )


def test_zarr_other_codecs_are_read_through_zarr(tmp_path, data, zarr):
    from zarr.codecs import GzipCodec

    theta, y = data
    stores = {
        "gzip": {"compressors": GzipCodec()},
        "narrow": {"chunks": (96, 3)},
        "none": {"compressors": None},
        "sharded": {"chunks": (96, 7), "shards": (192, 7)},
    }
    for name, options in stores.items():
        options = {"chunks": (96, 7), **options}
        z = zarr.create_array(
            store=str(tmp_path / name), shape=theta.shape, dtype="f8", **options
        )
        z[:] = theta
        preds = open_predictions(tmp_path / name)
        assert preds.files[0].codec is None, name
        same(score_files(preds, y), leepfast.score(theta, y))


def test_zarr_damaged_chunk_is_named(tmp_path, data, zarr):
    theta, y = data
    path = tmp_path / "p.zarr"
    array = zarr.create_array(store=path, shape=theta.shape, chunks=(100, 7), dtype="f8")
    array[:] = theta
    frame = (path / "c" / "3" / "0").read_bytes()
    spoil(path / "c" / "3" / "0", 0)  # the zstd frame's magic number
    # decoded by leepfast (blocks of whole chunks) or through zarr (any other block)
    with pytest.raises(FileFormatError) as err:
        score_files(path, y)
    assert str(err.value) == (
        f"predictions (file {path}): chunk c/3/0 (rows 300 to 399) is not a zstd frame "
        "of its 5600 bytes"
    )
    with pytest.raises(FileFormatError) as err:
        score_files(path, y, block_size=97)
    assert str(err.value).startswith(
        f"predictions (file {path}): rows 291 to 387 cannot be read (RuntimeError: "
    )
    (path / "c" / "3" / "0").write_bytes(frame[:-20])  # cut short
    with pytest.raises(FileFormatError) as err:
        score_files(path, y)
    assert str(err.value).startswith(
        f"predictions (file {path}): chunk c/3/0 (rows 300 to 399) cannot be read "
        "(RuntimeError: "
    )
    (path / "c" / "3" / "0").write_bytes(frame + b"\0" * 10**5)  # too long for a frame
    with pytest.raises(FileFormatError, match=r"is 10\d{4} bytes, more than a zstd frame"):
        score_files(path, y)


def test_zarr_rewritten_between_passes_is_refused(tmp_path, data, zarr):
    theta, y = data
    store = str(tmp_path / "p.zarr")
    zarr.create_array(store=store, shape=theta.shape, dtype="f8")[:] = theta
    preds = open_predictions(store)
    zarr.create_array(store=store, shape=theta.shape, dtype="f8", overwrite=True)[:] = (
        theta[::-1]
    )
    with pytest.raises(FileFormatError, match="changed since it was opened"):
        score_files(preds, y)


def test_zarr_of_features(tmp_path, rng, zarr):
    f = rng.normal(size=(300, 6))
    y = rng.integers(0, 3, 300)
    store = str(tmp_path / "f.zarr")
    zarr.create_array(store=store, shape=f.shape, chunks=(64, 6), dtype="f8")[:] = f
    assert leepfast.h_score(store, y) == pytest.approx(leepfast.h_score(f, y), rel=1e-12)


def test_a_readable_format_named_npy_says_to_rename_it(tmp_path, data, h5py, arrow):
    pa, pq = arrow
    theta, _ = data
    with h5py.File(tmp_path / "h.npy", "w") as f:
        f.create_dataset("p", data=theta)
    pq.write_table(pa.table({"a": theta[:, 0]}), tmp_path / "q.npy")
    for name, what, ext in (
        ("h.npy", "an HDF5 file", ".h5"),
        ("q.npy", "a Parquet file", ".parquet"),
    ):
        with pytest.raises(FileFormatError) as err:
            open_predictions(tmp_path / name)
        assert str(err.value).endswith(
            f"(it is {what}: rename it to end in {ext}, which leepfast reads)"
        )
