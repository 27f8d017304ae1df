"""Fuzzing the file openers: random headers, truncations and byte flips.

Whatever the bytes, opening and scoring a file may only succeed or raise the library's
clear errors (ValueError, of which FileFormatError is one, or TypeError): never crash,
hang, unpickle, or allocate what a header claims. When our reader accepts a .npy file,
NumPy's own reader (``allow_pickle=False``) must read the same array from it, and
scoring it must agree with the in-memory API, error type included.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leepfast
from leepfast import FileFormatError, open_labels, open_predictions, score_files
from leepfast.readers import containers, registry

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DESCRS = [
    "<f2",
    "<f4",
    "<f8",
    ">f4",
    ">f8",
    "|f4",
    "f4",
    "<i8",
    "|u1",
    ">i4",
    "|O",
    "O",
    "<U3",
    "|V8",
    "<c8",
    "float32",
    "<f16",
    "",
    "<f4\x00",
]
BIG = [0, 1, 2, 3, 2**31, 2**32 + 1, 2**40, 2**63, 2**64 + 7]


@st.composite
def headers(draw):
    """A header text: mostly well-formed dicts with odd values, sometimes any text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=200))
    descr = draw(st.sampled_from(DESCRS) | st.text(max_size=6))
    fortran = draw(st.sampled_from(["False", "True", "0", "1", "None", "'no'"]))
    dims = draw(
        st.lists(st.integers(0, 4) | st.sampled_from(BIG) | st.integers(-3, -1), max_size=3)
    )
    shape = "(" + "".join(f"{d}, " for d in dims) + ")"
    items = [f"'descr': {descr!r}", f"'fortran_order': {fortran}", f"'shape': {shape}"]
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    if draw(st.integers(0, 5)) == 0:
        items = items[: draw(st.integers(0, 2))] + [
            draw(
                st.sampled_from(
                    [
                        "'extra': 1",
                        "'shape': (1, 1)",
                        "'descr': __import__('os').getcwd()",
                        "'x': [1, 2]",
                        "'y': {'a': 1}",
                        "**{}",
                    ]
                )
            )
        ]
    return "{" + ", ".join(items) + ", }"


def preamble(header, version):
    text = header.encode("utf8" if version == 3 else "latin1", "replace")
    prefix = 10 if version == 1 else 12
    text += b" " * ((-(prefix + len(text) + 1)) % 64) + b"\n"
    size = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size[: 2 if version == 1 else 4] + text


def valid_probabilities(draw, n, z, dtype):
    raw = np.array(
        draw(st.lists(st.floats(0.01, 1.0), min_size=n * z, max_size=n * z)),
        dtype=np.float64,
    ).reshape(n, z)
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


@st.composite
def npy_files(draw):
    """Bytes of a .npy file: valid ones, then mutated (flips, truncation, junk)."""
    version = draw(st.sampled_from([1, 2, 3]))
    if draw(st.booleans()):  # a real file of small floats
        n, z = draw(st.integers(1, 5)), draw(st.integers(1, 4))
        dtype = np.dtype(draw(st.sampled_from(["<f2", "<f4", "<f8", ">f4", ">f8"])))
        fortran = draw(st.booleans())
        if draw(st.booleans()):
            arr = valid_probabilities(draw, n, z, dtype)
        else:
            arr = np.frombuffer(
                draw(
                    st.binary(
                        min_size=n * z * dtype.itemsize, max_size=n * z * dtype.itemsize
                    )
                ),
                dtype=dtype,
            ).reshape(n, z)
        header = (
            f"{{'descr': '{dtype.str}', 'fortran_order': {fortran}, 'shape': ({n}, {z}), }}"
        )
        data = preamble(header, version) + arr.tobytes(order="F" if fortran else "C")
    else:
        data = preamble(draw(headers()), version) + draw(st.binary(max_size=256))
    for _ in range(draw(st.integers(0, 3))):  # byte flips
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    if data and draw(st.integers(0, 3)) == 0:  # truncation, mostly of the data
        data = data[: len(data) - draw(st.integers(1, min(len(data), 80)))]
    return data


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _check_against_numpy(path, preds):
    """Our reader accepted the file: NumPy reads the same array; scores agree."""
    expected = np.load(path, allow_pickle=False)
    f = preds.files[0]
    assert expected.shape == (f.n_samples, f.n_source)
    assert expected.dtype == f.dtype
    np.testing.assert_array_equal(f.array, expected)
    y = np.arange(f.n_samples) % 3
    try:
        want = leepfast.score(expected, y)
    except (ValueError, TypeError) as err:
        with pytest.raises(type(err)):
            score_files(preds, y, block_size=2)
        return
    got = score_files(preds, y, block_size=2)
    np.testing.assert_allclose([got.leep, got.nce], [want.leep, want.nce], rtol=1e-12)


def _predictions_agree(path, preds):
    with preds:
        _check_against_numpy(path, preds)


def _labels_agree(path, labels):
    expected = np.load(path, allow_pickle=False)
    assert expected.ndim == 1 and expected.dtype.kind in "iu"
    assert (labels.n_samples, labels.low, labels.high) == (
        len(expected),
        int(expected.min()),
        int(expected.max()),
    )


@SETTINGS
@pytest.mark.parametrize(
    ("opener", "role", "agrees"),
    [
        (open_predictions, "predictions", _predictions_agree),
        (open_labels, "labels", _labels_agree),
    ],
    ids=["predictions", "labels"],
)
@given(data=npy_files())
def test_fuzz_npy(scratch, data, opener, role, agrees):
    # a file is refused with one of the opener's errors, whose message starts with the
    # argument it names, or opened, and then it reads as NumPy reads it
    path = scratch / f"{role}.npy"
    path.write_bytes(data)
    try:
        opened = opener(path)
    except (ValueError, TypeError) as err:
        assert str(err).startswith(role), str(err)
        return
    agrees(path, opened)


def _is_container(path):
    try:
        containers.refuse_container(path, path.stat().st_size, "predictions")
    except FileFormatError:
        return True
    return False


@SETTINGS
@given(
    data=st.binary(max_size=300),
    dtype=st.sampled_from(["float16", "float32", "float64", ">f8"]),
    n_source=st.integers(1, 9),
)
def test_fuzz_raw_predictions(scratch, data, dtype, n_source):
    path = scratch / "fuzz.bin"
    path.write_bytes(data)
    try:
        preds = open_predictions(path, dtype=dtype, n_source=n_source)
    except FileFormatError as err:
        row = n_source * np.dtype(dtype).itemsize
        # a file another reader claims (the .npy magic string, an HDF5 signature, ...)
        # is read by it, whatever its name; a known container is refused by name
        other = registry.reader_of(path).NAME != "raw" or _is_container(path)
        assert len(data) == 0 or len(data) % row or other, err
        return
    with preds:
        expected = np.frombuffer(
            data, dtype=np.dtype(dtype).newbyteorder(">" if dtype.startswith(">") else "<")
        ).reshape(-1, n_source)
        np.testing.assert_array_equal(preds.files[0].array, expected)
        y = np.zeros(len(expected), dtype=np.int64)
        try:
            want = leepfast.score(expected, y).leep
        except ValueError:
            with pytest.raises(ValueError):
                score_files(preds, y, block_size=3)
            return
        assert score_files(preds, y, block_size=3).leep == pytest.approx(want, rel=1e-12)


@SETTINGS
@given(
    lines=st.lists(
        st.integers(-5, 20).map(str)
        | st.sampled_from(["", " 3 ", "+4", "1.0", "x", "9" * 30, "7\r", "1 2", "0x1"])
        | st.text(max_size=8),
        min_size=0,
        max_size=30,
    ),
    ending=st.sampled_from(["", "\n", "\r\n"]),
)
def test_fuzz_text_labels(scratch, lines, ending):
    data = ("\n".join(lines) + (ending if lines else "")).encode("utf8")
    path = scratch / "labels.txt"
    path.write_bytes(data)
    # the model: one final newline is allowed; every other line is one int64
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()

    def parse(piece):
        # the documented syntax: ASCII whitespace, an optional '-', ASCII digits
        # (int() alone would also take '+4', '1_0', non-ASCII digits)
        if len(piece) > 64 or not re.fullmatch(rb"[ \t\r\v\f]*-?[0-9]+[ \t\r\v\f]*", piece):
            return None
        try:
            value = int(piece)
        except ValueError:
            return None
        return value if -(2**63) <= value < 2**63 else None

    values = [parse(piece) for piece in pieces]
    valid = bool(values) and None not in values
    try:
        labels = open_labels(path)
    except (ValueError, TypeError) as err:
        assert str(err).startswith("labels")
        assert not valid, err
        return
    assert valid
    assert (labels.n_samples, labels.low, labels.high) == (
        len(values),
        min(values),
        max(values),
    )
    assert np.concatenate(list(labels.chunks())).tolist() == values


@st.composite
def npz_files(draw):
    """Bytes of an .npz of stored or deflated members whose names put the data at every
    offset mod 8, and the key to read, then mutated (byte flips anywhere, truncation)."""
    import io
    import zipfile

    n, z = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    dtype = np.dtype(draw(st.sampled_from(["<f2", "<f4", "<f8", ">f8"])))
    arrays = {
        "p" * draw(st.integers(1, 8)): valid_probabilities(draw, n, z, dtype),
        "q" * draw(st.integers(1, 8)): valid_probabilities(draw, n, z, dtype),
    }
    out = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(out, "w", method) as zf:  # as numpy.savez(_compressed) writes
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    data = out.getvalue()
    for _ in range(draw(st.integers(0, 2))):  # byte flips
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    if draw(st.integers(0, 3)) == 0:
        data = data[: len(data) - draw(st.integers(1, min(len(data), 200)))]
    return data, draw(st.sampled_from(sorted(arrays)))


@SETTINGS
@given(case=npz_files())
def test_fuzz_npz_members(scratch, case):
    # a stored member is mapped where its data lies (at any offset, aligned or not), a
    # deflated one inflated by leepfast: refused with a clear error, or read as NumPy
    # reads it whenever NumPy can (a stored member's CRC is not checked: its rows are
    # mapped, as a .npy's are; a deflated one's is)
    data, key = case
    path = scratch / "fuzz.npz"
    path.write_bytes(data)
    try:
        preds = open_predictions(path, key=key)
    except (ValueError, TypeError) as err:
        assert str(err).startswith(("predictions", "key:")), str(err)
        return
    with preds:
        f = preds.files[0]
        try:
            got = np.concatenate([b.copy() for _, _, _, b in preds.blocks(2)])
        except FileFormatError as err:  # found damaged while inflated
            assert str(err).startswith("predictions"), str(err)
            return
        assert got.shape == (f.n_samples, f.n_source)
        try:
            with np.load(path, allow_pickle=False) as archive:
                expected = archive[key]
        except Exception:  # noqa: BLE001 - NumPy's own refusal (a CRC, a header)
            expected = None
        if expected is not None and expected.ndim == 2 and not expected.dtype.hasobject:
            np.testing.assert_array_equal(got, expected)
        y = np.arange(f.n_samples) % 3
        try:
            want = leepfast.score(got, y)
        except (ValueError, TypeError) as err:
            with pytest.raises(type(err)):
                score_files(preds, y, block_size=2)
            return
        r = score_files(preds, y, block_size=2)
        np.testing.assert_allclose([r.leep, r.nce], [want.leep, want.nce], rtol=1e-12)
