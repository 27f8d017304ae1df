"""File sources and the out-of-core driver: real files in tmp_path.

Every way of storing the same predictions (.npy C or Fortran order, either byte order,
format 1/2/3, raw binary, shards, directories, globs; labels as .npy or text) must give
the in-memory API's result; every bad file must give one clear error naming the file.
"""

import os
import pickle

import numpy as np
import pytest

import leepfast
from leepfast import FileFormatError, _reference, open_labels, open_predictions, score_files
from leepfast.readers.npy import MAX_NPY_HEADER

RTOL = 1e-12


def save_npy(path, arr, version=None):
    """np.save with an explicit format version (numpy's writer, our reader)."""
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=version, allow_pickle=False)
    return path


def npy_bytes(header, version=1):
    """A .npy preamble and header (padded to 64 bytes) for a header string."""
    text = header.encode("latin1" if version < 3 else "utf8")
    prefix_len = 10 if version == 1 else 12
    text += b" " * ((-(prefix_len + len(text) + 1)) % 64) + b"\n"
    size = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + text


def assert_same(r, expected):
    assert r.n_samples == expected.n_samples
    assert r.n_source == expected.n_source
    assert r.n_target == expected.n_target
    np.testing.assert_allclose(r.leep, expected.leep, rtol=RTOL)
    np.testing.assert_allclose(r.nce, expected.nce, rtol=RTOL)
    np.testing.assert_allclose(r.joint, expected.joint, rtol=RTOL, atol=1e-300)
    np.testing.assert_array_equal(r.hard_counts, expected.hard_counts)
    np.testing.assert_array_equal(r.class_counts, expected.class_counts)


@pytest.fixture
def data(rng, make_theta, make_labels):
    theta = make_theta(rng, 1001, 13, dtype=np.float64, zeros=0.2)
    y = make_labels(rng, 1001, 5)
    y[y == 3] = 4  # an absent target class
    return theta, y


# ---------------------------------------------------------------------------------------
# Every storage gives the in-memory result


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_npy_matches_in_memory(tmp_path, data, backend, dtype, order, byteorder):
    theta, y = data
    stored = np.asarray(theta.astype(dtype), order=order)
    stored = stored.astype(stored.dtype.newbyteorder(byteorder), order=order)
    path = save_npy(tmp_path / "p.npy", stored)
    np.save(tmp_path / "y.npy", y)
    expected = leepfast.score(theta.astype(dtype), y, backend=backend)
    with open_predictions(path) as preds:
        assert preds.files[0].fortran_order == (order == "F")
        assert preds.files[0].dtype == stored.dtype
        r = score_files(preds, tmp_path / "y.npy", backend=backend, block_size=97)
    assert_same(r, expected)
    if dtype == np.float64:
        np.testing.assert_allclose(r.leep, _reference.leep(theta, y), rtol=RTOL)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_format_versions(tmp_path, data, version):
    theta, y = data
    path = save_npy(tmp_path / "p.npy", theta, version=version)
    assert open(path, "rb").read(8)[6] == version[0]
    assert_same(score_files(path, y), leepfast.score(theta, y))


def test_raw_matches_npy(tmp_path, data):
    theta, y = data
    theta32 = theta.astype(np.float32)
    theta32.astype("<f4").tofile(tmp_path / "p.bin")
    np.save(tmp_path / "p.npy", theta32)
    raw = score_files(tmp_path / "p.bin", y, dtype="float32", n_source=13, block_size=41)
    npy = score_files(tmp_path / "p.npy", y, block_size=41)
    assert raw.leep == npy.leep and raw.nce == npy.nce  # same blocks, same bits
    assert_same(raw, leepfast.score(theta32, y))
    with open_predictions(tmp_path / "p.bin", dtype="float32", n_source=13) as preds:
        assert preds.n_samples == 1001 and preds.files[0].format == "raw"


def test_raw_big_endian_dtype(tmp_path, data):
    theta, y = data
    theta.astype(">f8").tofile(tmp_path / "p.be")
    r = score_files(tmp_path / "p.be", y, dtype=">f8", n_source=13)
    assert_same(r, leepfast.score(theta, y))


def test_shards_match_one_file_and_memory(tmp_path, data):
    theta, y = data
    cuts = [0, 1, 300, 301, 777, 1001]  # a one-row shard, awkward sizes
    paths = []
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        paths.append(
            np.save(tmp_path / f"part-{i}.npy", theta[a:b]) or tmp_path / f"part-{i}.npy"
        )
    np.save(tmp_path / "whole.npy", theta)
    expected = leepfast.score(theta, y)
    shards = score_files(paths, y, block_size=64)
    whole = score_files(tmp_path / "whole.npy", y, block_size=64)
    assert_same(shards, expected)
    assert_same(whole, expected)
    assert_same(shards, whole)


def test_shards_in_the_order_given(tmp_path, data):
    theta, y = data
    np.save(tmp_path / "a.npy", theta[:500])
    np.save(tmp_path / "b.npy", theta[500:])
    # swapping the shards pairs rows with other labels: a different dataset
    swapped = np.concatenate([theta[500:], theta[:500]])
    r = score_files([tmp_path / "b.npy", tmp_path / "a.npy"], y)
    assert_same(r, leepfast.score(swapped, y))


def test_directory_and_glob_sorted_by_name(tmp_path, data):
    theta, y = data
    d = tmp_path / "dump"
    d.mkdir()
    # written out of order; names sort as 00, 01, 02
    for i, (a, b) in [(2, (700, 1001)), (0, (0, 350)), (1, (350, 700))]:
        np.save(d / f"shard-{i:02d}.npy", theta[a:b])
    (d / ".hidden").write_bytes(b"not a shard")
    expected = leepfast.score(theta, y)
    with open_predictions(d) as preds:
        assert [os.path.basename(f.path) for f in preds.files] == [
            "shard-00.npy",
            "shard-01.npy",
            "shard-02.npy",
        ]
    assert_same(score_files(d, y), expected)
    assert_same(score_files(str(d / "shard-*.npy"), y), expected)


@pytest.mark.parametrize("label_dtype", ["<i4", ">i8", "u1", "<u8"])
def test_labels_npy_any_integer_dtype(tmp_path, data, label_dtype):
    theta, y = data
    np.save(tmp_path / "p.npy", theta)
    np.save(tmp_path / "y.npy", y.astype(label_dtype))
    assert_same(
        score_files(tmp_path / "p.npy", tmp_path / "y.npy"), leepfast.score(theta, y)
    )


def test_labels_text(tmp_path, data):
    theta, y = data
    np.save(tmp_path / "p.npy", theta)
    lines = "\r\n".join(str(v) for v in y) + "\r\n"  # CRLF, trailing newline
    (tmp_path / "y.txt").write_text(lines)
    labels = open_labels(tmp_path / "y.txt")
    assert (labels.n_samples, labels.low, labels.high) == (1001, 0, 4)
    assert_same(
        score_files(tmp_path / "p.npy", tmp_path / "y.txt", block_size=50),
        leepfast.score(theta, y),
    )


def test_labels_text_streamed_in_chunks(tmp_path, rng, make_theta, monkeypatch):
    # chunks of 64 bytes split lines anywhere; the result must not change
    import leepfast.readers.labels as files

    theta = make_theta(rng, 500, 4)
    y = rng.integers(0, 1000, 500)
    np.save(tmp_path / "p.npy", theta)
    (tmp_path / "y.txt").write_text("\n".join(map(str, y)))  # no final newline
    expected = leepfast.score(theta, y)
    monkeypatch.setattr(files, "TEXT_CHUNK", 64)
    assert_same(score_files(tmp_path / "p.npy", tmp_path / "y.txt", block_size=7), expected)


def test_logits_file(tmp_path, rng):
    logits = rng.normal(size=(400, 9)) * 4
    y = rng.integers(0, 3, 400)
    np.save(tmp_path / "z.npy", logits.astype(np.float32))
    r = score_files(tmp_path / "z.npy", y, logits=True, block_size=33)
    assert_same(r, leepfast.score(logits.astype(np.float32), y, logits=True))
    np.testing.assert_allclose(
        r.leep, _reference.leep(_reference.softmax(logits.astype(np.float32)), y), rtol=1e-9
    )


def test_n_target_and_threads_and_backends_agree(tmp_path, data, backend):
    theta, y = data
    np.save(tmp_path / "p.npy", theta)
    r = score_files(
        tmp_path / "p.npy", y, n_target=8, backend=backend, n_threads=2, block_size=101
    )
    assert r.n_target == 8 and r.backend == backend
    assert_same(r, leepfast.score(theta, y, n_target=8))


def test_file_results_are_deterministic(tmp_path, data):
    theta, y = data
    np.save(tmp_path / "p.npy", theta)
    a = score_files(tmp_path / "p.npy", y, n_threads=2, block_size=97)
    b = score_files(tmp_path / "p.npy", y, n_threads=2, block_size=97)
    assert a.leep == b.leep and a.nce == b.nce


def test_maps_are_read_only_and_files_unchanged(tmp_path, data):
    theta, y = data
    path = np.save(tmp_path / "p.npy", theta) or tmp_path / "p.npy"
    before = path.read_bytes(), os.stat(path).st_mtime_ns
    with open_predictions(path) as preds:
        assert not preds.files[0].array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            preds.files[0].array[0, 0] = 1.0
        score_files(preds, y)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npy"]  # nothing written


def test_maps_advised_sequential(tmp_path, data):
    # the kernel shows MADV_SEQUENTIAL as the "sr" (sequential read) flag in smaps
    theta, y = data
    path = str(np.save(tmp_path / "p.npy", theta) or tmp_path / "p.npy")
    with open_predictions(path) as preds:
        assert preds.files[0].array is not None
        smaps = open("/proc/self/smaps").read().split("\n")
        flags = [
            smaps[i + j]
            for i, line in enumerate(smaps)
            if line.endswith(path)
            for j in range(1, 30)
            if smaps[i + j].startswith("VmFlags:")
        ][:1]
    assert flags and " sr" in flags[0].split("VmFlags:")[1] + " ", flags


def test_open_predictions_checks_nothing_is_read(tmp_path, data):
    theta, _ = data
    np.save(tmp_path / "p.npy", theta)
    with open_predictions(tmp_path / "p.npy") as preds:
        assert (preds.n_samples, preds.n_source, preds.nbytes) == (1001, 13, 1001 * 13 * 8)
        assert len(preds) == 1001
        assert "n_samples=1001" in repr(preds)


# ---------------------------------------------------------------------------------------
# Bad files: one clear error naming the file (and the row)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="predictions: no such file.*nope.npy"):
        open_predictions(tmp_path / "nope.npy")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        open_predictions(str(tmp_path / "x-*.npy"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no files"):
        open_predictions(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="labels: no such file"):
        open_labels(tmp_path / "y.npy")


def test_truncated_npy(tmp_path, data):
    theta, _ = data
    good = (np.save(tmp_path / "good.npy", theta) or tmp_path / "good.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(good[:-8])
    with pytest.raises(
        FileFormatError,
        match=r"file .*t\.npy\): truncated: the header "
        r"says shape \(1001, 13\) of float64, 104104 bytes of data, but "
        r"the file has 104096",
    ):
        open_predictions(tmp_path / "t.npy")
    (tmp_path / "t2.npy").write_bytes(good[:9])
    with pytest.raises(FileFormatError, match="truncated .npy file"):
        open_predictions(tmp_path / "t2.npy")
    (tmp_path / "t3.npy").write_bytes(good[:50])
    with pytest.raises(FileFormatError, match="header claims 118 bytes"):
        open_predictions(tmp_path / "t3.npy")


def test_npy_longer_than_header_says(tmp_path, data):
    theta, _ = data
    good = (np.save(tmp_path / "good.npy", theta) or tmp_path / "good.npy").read_bytes()
    (tmp_path / "long.npy").write_bytes(good + b"\0" * 8)
    with pytest.raises(FileFormatError, match="longer than its header says"):
        open_predictions(tmp_path / "long.npy")


def test_header_claims_huge_array_small_file(tmp_path):
    # nothing is allocated or mapped on the header's word
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1048576), }"
    (tmp_path / "huge.npy").write_bytes(npy_bytes(header) + b"\0" * 64)
    with pytest.raises(
        FileFormatError,
        match="truncated: the header says shape "
        r"\(1099511627776, 1048576\)",
    ):
        open_predictions(tmp_path / "huge.npy")


@pytest.mark.parametrize(
    "header, message",
    [
        (
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }",
            r"holds dtype '<i8'; expected float16, float32 or float64",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
            r"holds an array of shape \(4,\); expected shape \(n_samples, n_source\)",
        ),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", "holds no data"),
        ("{'descr': '<f4', 'fortran_order': 1, 'shape': (2, 2), }", "'fortran_order' is 1"),
        ("{'descr': '<f4', 'shape': (2, 2), }", r"header keys are \['descr', 'shape'\]"),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            "not a dict of plain constants",
        ),
        (
            "{'descr': __import__('os').getcwd(), 'fortran_order': False, 'shape': (2, 2)}",
            "not a dict of plain constants",
        ),
        ("[1, 2]", "not a dict of plain constants"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 2), }",
            "not a dict of plain constants",
        ),
    ],
)
def test_bad_headers(tmp_path, header, message):
    payload = b"" if "(0, 3)" in header else b"\0" * 16  # as the shape says
    (tmp_path / "bad.npy").write_bytes(npy_bytes(header) + payload)
    with pytest.raises(FileFormatError, match=message):
        open_predictions(tmp_path / "bad.npy")


def test_bad_preamble(tmp_path):
    (tmp_path / "v4.npy").write_bytes(b"\x93NUMPY\x04\x00" + b"\0" * 100)
    with pytest.raises(FileFormatError, match="unsupported .npy format version 4.0"):
        open_predictions(tmp_path / "v4.npy")
    (tmp_path / "no.npy").write_bytes(b"hello world, not numpy")
    with pytest.raises(FileFormatError, match="not a .npy file"):
        open_predictions(tmp_path / "no.npy")
    huge = (1 << 30).to_bytes(4, "little")  # a version 2.0 header of 1 GiB
    (tmp_path / "big.npy").write_bytes(b"\x93NUMPY\x02\x00" + huge)
    with pytest.raises(FileFormatError, match=f"expected at most {MAX_NPY_HEADER}"):
        open_predictions(tmp_path / "big.npy")


def test_pickled_npy_is_never_unpickled(tmp_path, creates_file):
    marker = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = creates_file(str(marker))
    with open(tmp_path / "evil.npy", "wb") as f:
        np.lib.format.write_array(f, obj, allow_pickle=True)
    (tmp_path / "evil-labels.npy").write_bytes((tmp_path / "evil.npy").read_bytes())
    # a bare pickle named .npy (np.load(allow_pickle=True) would unpickle it too)
    (tmp_path / "bare.npy").write_bytes(pickle.dumps(creates_file(str(marker))))
    assert not marker.exists()
    with pytest.raises(
        FileFormatError,
        match=r"evil\.npy\): holds Python objects .*never "
        "unpickles",
    ):
        open_predictions(tmp_path / "evil.npy")
    with pytest.raises(FileFormatError, match="labels .*holds Python objects"):
        open_labels(tmp_path / "evil-labels.npy")
    with pytest.raises(FileFormatError, match="looks like a Python pickle"):
        open_predictions(tmp_path / "bare.npy")
    with pytest.raises(FileFormatError):
        score_files(tmp_path / "evil.npy", [0])
    assert not marker.exists()


def test_raw_size_not_multiple_of_row(tmp_path):
    (tmp_path / "p.bin").write_bytes(b"\0" * (3 * 4 * 5 + 2))
    with pytest.raises(
        FileFormatError,
        match=r"p\.bin\): has 62 bytes, not a multiple "
        r"of the row size 20 \(5 values of float32\): 3 rows and 2 bytes "
        "left over",
    ):
        open_predictions(tmp_path / "p.bin", dtype="float32", n_source=5)
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(FileFormatError, match="is empty"):
        open_predictions(tmp_path / "e.bin", dtype="float32", n_source=5)


def test_raw_needs_dtype_and_n_source(tmp_path):
    (tmp_path / "p.bin").write_bytes(b"\0" * 40)
    with pytest.raises(TypeError, match="dtype: raw .*need a dtype"):
        open_predictions(tmp_path / "p.bin", n_source=5)
    with pytest.raises(TypeError, match="n_source: raw .*need n_source"):
        open_predictions(tmp_path / "p.bin", dtype="float32")
    with pytest.raises(
        TypeError, match="dtype: expected float16, float32 or float64, got int32"
    ):
        open_predictions(tmp_path / "p.bin", dtype="int32", n_source=5)
    with pytest.raises(ValueError, match="n_source: expected a positive integer, got 0"):
        open_predictions(tmp_path / "p.bin", dtype="float32", n_source=0)


def test_npy_disagrees_with_given_dtype_or_n_source(tmp_path, data):
    theta, _ = data
    np.save(tmp_path / "p.npy", theta)
    with pytest.raises(FileFormatError, match="holds float64, but dtype=float32"):
        open_predictions(tmp_path / "p.npy", dtype="float32")
    with pytest.raises(FileFormatError, match="has 13 source classes, but n_source=12"):
        open_predictions(tmp_path / "p.npy", n_source=12)


def test_shards_with_different_columns(tmp_path, data):
    theta, _ = data
    np.save(tmp_path / "a.npy", theta[:, :12] / theta[:, :12].sum(1, keepdims=True))
    np.save(tmp_path / "b.npy", theta)
    with pytest.raises(
        FileFormatError,
        match=r"b\.npy\): has 13 source classes .*"
        r"expected 12, as in .*a\.npy",
    ):
        open_predictions([tmp_path / "a.npy", tmp_path / "b.npy"])


def test_label_count_differs(tmp_path, data):
    theta, y = data
    np.save(tmp_path / "a.npy", theta[:600])
    np.save(tmp_path / "b.npy", theta[600:])
    np.save(tmp_path / "y.npy", y[:-1])
    with pytest.raises(
        ValueError,
        match=r"labels \(file .*y\.npy\): expected 1001 labels "
        r"\(one per row of the 2 prediction files\), got 1000",
    ):
        score_files([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "y.npy")


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.nan, "contains NaN or infinity"),
        (-0.25, r"contains a negative value \(-0.25\)"),
        (0.5, "sums to 1.5"),
    ],
)
def test_bad_row_names_file_and_row(tmp_path, data, bad, message):
    theta, y = data
    theta = theta.copy()
    np.save(tmp_path / "a.npy", theta[:600])
    row = 777  # row 177 of the second shard
    if bad < 0:  # a negative entry in a row that still sums to 1
        theta[row, 1] += theta[row, 0] - bad
        theta[row, 0] = bad
    elif bad > 0:
        theta[row, 0] += bad
    else:
        theta[row, 0] = bad
    np.save(tmp_path / "b.npy", theta[600:])
    np.save(tmp_path / "whole.npy", theta)
    with pytest.raises(
        ValueError,
        match=rf"predictions \(file .*b\.npy\): row 177 "
        rf"{message}",
    ):
        score_files([tmp_path / "a.npy", tmp_path / "b.npy"], y, block_size=50)
    with pytest.raises(
        ValueError,
        match=rf"predictions \(file .*whole\.npy\): row 777 "
        rf"{message}",
    ):
        score_files(tmp_path / "whole.npy", y, block_size=50)


def test_labels_out_of_range(tmp_path, data):
    theta, y = data
    np.save(tmp_path / "p.npy", theta)
    y = y.copy()
    y[321] = 9
    (tmp_path / "y.txt").write_text("\n".join(map(str, y)) + "\n")
    with pytest.raises(
        ValueError,
        match=r"labels \(file .*y\.txt\): row 321 \(line 322\) "
        r"is 9; expected an integer in \[0, 5\)",
    ):
        score_files(tmp_path / "p.npy", tmp_path / "y.txt", n_target=5)
    y[400] = -1
    np.save(tmp_path / "y.npy", y)
    with pytest.raises(
        ValueError,
        match=r"labels \(file .*y\.npy\): row 400 is -1; "
        "expected labels >= 0",
    ):
        score_files(tmp_path / "p.npy", tmp_path / "y.npy")


@pytest.mark.parametrize(
    "text, message",
    [
        ("1\n2\nx\n3\n", "line 3 is 'x'; expected one integer per line"),
        ("1\n2.5\n", "line 2 is '2.5'"),
        ("1\n\n2\n", "line 2 is ''"),
        ("1\n2 3\n", "line 2 is '2 3'"),
        ("1\n99999999999999999999\n", "line 2 is '99999999999999999999'"),
        ("1\n" + "7" * 100 + "\n", "line 2 has 100 characters"),
        ("", "no labels"),
        ("1\n2\x00\n", "contains NUL bytes"),
    ],
)
def test_bad_label_text(tmp_path, text, message):
    (tmp_path / "y.txt").write_text(text)
    with pytest.raises(FileFormatError, match=r"labels \(file .*y\.txt\): " + message):
        open_labels(tmp_path / "y.txt")


def test_bad_label_npy(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros(3))
    with pytest.raises(FileFormatError, match="holds dtype '<f8'; expected integer labels"):
        open_labels(tmp_path / "f.npy")
    np.save(tmp_path / "2d.npy", np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(
        FileFormatError,
        match=r"shape \(3, 1\); expected shape "
        r"\(n_samples,\)",
    ):
        open_labels(tmp_path / "2d.npy")
    np.save(tmp_path / "u.npy", np.array([1, 2**63], dtype=np.uint64))
    with pytest.raises(
        ValueError, match="row 1 is 9223372036854775808; expected labels below 2"
    ):
        open_labels(tmp_path / "u.npy")


def test_label_that_would_need_a_huge_state(tmp_path, data):
    theta, _ = data
    np.save(tmp_path / "p.npy", theta)
    y = np.zeros(1001, dtype=np.int64)
    y[5] = 10**15
    with pytest.raises(
        ValueError,
        match=r"n_target=1000000000000001 with n_source=13 .*"
        r"needs a Y x Z state .* check the labels \(is "
        r"1000000000000000 meant to be a label\?\)",
    ):
        score_files(tmp_path / "p.npy", y)


def test_file_errors_are_value_errors():
    assert issubclass(FileFormatError, ValueError)


# ---------------------------------------------------------------------------------------
# A file of several hundred MB, small blocks


def test_large_file_small_blocks(tmp_path, rng):
    n, z, y_classes = 750_000, 100, 40  # 300 MB of float32
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, z))
    for a in range(0, n, 100_000):  # written in parts: never 300 MB of RAM here
        part = rng.random((min(100_000, n - a), z), dtype=np.float32) ** 4 + 1e-3
        out[a : a + len(part)] = part / part.sum(axis=1, keepdims=True)
    out.flush()
    del out
    y = rng.integers(0, y_classes, n)
    assert os.path.getsize(path) > 300e6
    in_memory = leepfast.score(np.load(path, mmap_mode="r"), y)
    r = score_files(path, y, block_size=4099)
    assert_same(r, in_memory)
    assert -np.log(z) < r.leep < 0  # near-uniform rows: LEEP just above -log(Y)


def test_header_with_odd_escapes_warns_nothing(tmp_path):
    # a header string with an invalid escape: rejected with our error, and Python's
    # DeprecationWarning/SyntaxWarning about the escape does not leak to the caller
    import warnings

    header = b"{'descr': '<f4\\:', 'fortran_order': False, 'shape': (2, 2), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(16)
    path = tmp_path / "odd.npy"
    path.write_bytes(raw)
    with warnings.catch_warnings(record=True) as caught:
        # "always", not "error": compile turns an error-warning into a SyntaxError
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="odd.npy"):
            leepfast.score_files(path, np.array([0, 1]))
    assert [str(w.message) for w in caught] == []


def test_npy_header_with_a_nul_byte_is_refused_as_numpy_refuses_it(tmp_path):
    # found by the fuzz test: a NUL after the dict, before the padding. NumPy cannot
    # parse that header; a reader that accepted it would score a file NumPy cannot read
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\x00"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    raw += np.full((2, 2), 0.5, dtype="<f4").tobytes()
    path = tmp_path / "nul.npy"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="Cannot parse header"):
        np.load(path)
    with pytest.raises(ValueError, match=r"nul.npy.*not a dict of plain constants"):
        leepfast.open_predictions(path)
    # the same header without the NUL is read
    good = tmp_path / "good.npy"
    good.write_bytes(raw.replace(b"}\x00", b"} "))
    assert leepfast.open_predictions(good).n_samples == 2


def test_leep_nce_and_score_take_files_as_score_files_does(tmp_path, rng, make_theta):
    # predictions on disk go through score_files (same values, its errors), labels on
    # disk are read whole next to in-memory predictions
    theta = make_theta(rng, 3000, 9)
    y = rng.integers(0, 4, 3000)
    np.save(tmp_path / "p.npy", theta)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "y.txt").write_text("\n".join(map(str, y)) + "\n")
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "0.npy", theta[:1000])
    np.save(tmp_path / "shards" / "1.npy", theta[1000:])
    want = leepfast.score(theta, y, n_target=6)
    for preds in (tmp_path / "p.npy", str(tmp_path / "p.npy"), tmp_path / "shards"):
        for labels in (y, tmp_path / "y.npy", str(tmp_path / "y.txt")):
            got = leepfast.score(preds, labels, n_target=6, block_size=512)
            assert isinstance(got, leepfast.Result)
            np.testing.assert_allclose(
                [got.leep, got.nce], [want.leep, want.nce], rtol=1e-12
            )
            np.testing.assert_allclose(got.joint, want.joint, rtol=1e-12)
            assert got.n_target == 6
            assert leepfast.leep(preds, labels) == pytest.approx(want.leep, rel=1e-12)
            assert leepfast.nce(preds, labels) == pytest.approx(want.nce, rel=1e-12)
    for labels in (tmp_path / "y.npy", str(tmp_path / "y.txt")):
        assert leepfast.leep(theta, labels) == pytest.approx(want.leep, rel=1e-12)
    logits = np.log(theta + 1e-3)
    np.save(tmp_path / "logits.npy", logits)
    assert leepfast.leep(tmp_path / "logits.npy", y, logits=True) == pytest.approx(
        leepfast.leep(logits, y, logits=True), rel=1e-12
    )
    with pytest.raises(FileNotFoundError):
        leepfast.leep(tmp_path / "missing.npy", y)
    with pytest.raises(ValueError, match=r"^labels: expected 3000 labels \(one per row"):
        leepfast.leep(theta, y[:-1])
