"""Text label files (issue 13 item 8): what a label line may be, which line is reported,
and how a bad line is shown.

A label line is ASCII whitespace, an optional '-', ASCII digits, ASCII whitespace.
Python's int() accepts more ('1_0' is 10, '+3', '٣', full-width digits): each of those is
refused, naming its line and showing the line as it is.
"""

import re

import numpy as np
import pytest

import leepfast
import leepfast.readers.labels as files
from leepfast import FileFormatError, open_labels, score_files

SYNTAX = (
    "expected one integer per line (ASCII digits 0-9, an optional leading '-', "
    "ASCII spaces or tabs around them)"
)


def refused(path, data):
    path.write_bytes(data)
    with pytest.raises(FileFormatError) as err:
        open_labels(path)
    assert err.value.argument is None or err.value.argument == "labels"
    return str(err.value)


@pytest.mark.parametrize(
    "line, shown, detail",
    [
        (b"1_0", "'1_0'", ""),
        (b"+3", "'+3'", ""),
        (b"3.0", "'3.0'", ""),
        (b"0x3", "'0x3'", ""),
        (b"1e3", "'1e3'", ""),
        ("\u0663".encode(), "'\u0663'", "; '\u0663' is U+0663 ARABIC-INDIC DIGIT THREE"),
        ("\uff13".encode(), "'\uff13'", "; '\uff13' is U+FF13 FULLWIDTH DIGIT THREE"),
        ("3\xa0".encode(), r"'3\xa0'", r"; '\xa0' is U+00A0 NO-BREAK SPACE"),
        (
            "\ufeff3".encode(),
            r"'\ufeff3'",
            r"; '\ufeff' is U+FEFF ZERO WIDTH NO-BREAK SPACE",
        ),
        (
            "\u00e9t\u00e9".encode(),
            "'\u00e9t\u00e9'",
            "; '\u00e9' is U+00E9 LATIN SMALL LETTER E WITH ACUTE",
        ),
        (b"3\xff", r"b'3\xff'", "; the line is not UTF-8 text"),
        (
            b"99999999999999999999",
            "'99999999999999999999'",
            "; the value is outside the int64 range",
        ),
    ],
)
def test_refused_line_is_named_and_shown_as_it_is(tmp_path, line, shown, detail):
    message = refused(tmp_path / "y.txt", b"1\n2\n" + line + b"\n4\n")
    assert message == (
        f"labels (file {tmp_path / 'y.txt'}): line 3 is {shown}; {SYNTAX}{detail}"
    )


def test_underscore_is_not_read_as_ten(tmp_path):
    # the bug: int(b"1_0") == 10, and NumPy's bytes-to-int conversion uses int()
    assert int(b"1_0") == 10
    message = refused(tmp_path / "y.txt", b"0\n1_0\n")
    assert "line 2 is '1_0'" in message


def test_accepted_syntax(tmp_path):
    # ASCII spaces, tabs, CR (CRLF files) around the digits; leading zeros; '-' is read
    # (and refused later by the range check, with its row)
    (tmp_path / "y.txt").write_bytes(b" 3 \n\t4\r\n007\n-0\n5")
    labels = open_labels(tmp_path / "y.txt")
    assert np.concatenate(list(labels.chunks())).tolist() == [3, 4, 7, 0, 5]
    (tmp_path / "n.txt").write_bytes(b"1\n-2\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 2\) is -2; expected labels >= 0"):
        open_labels(tmp_path / "n.txt").check_range()


def test_first_bad_line_is_reported_before_a_later_long_line(tmp_path):
    # the bug: the chunk's lines were first checked for length, so a long line further
    # down the same chunk was reported instead of the first bad line
    data = b"1\n2\nx\n" + b"3\n" * 10 + b"7" * 100 + b"\n"
    message = refused(tmp_path / "y.txt", data)
    assert message == f"labels (file {tmp_path / 'y.txt'}): line 3 is 'x'; {SYNTAX}"
    # and a long line that does come first is the one reported
    message = refused(tmp_path / "z.txt", b"1\n" + b"7" * 100 + b"\nx\n")
    assert message == (
        f"labels (file {tmp_path / 'z.txt'}): line 2 has 100 characters; "
        "expected one integer per line"
    )


def test_first_bad_line_is_reported_before_a_later_nul(tmp_path):
    message = refused(tmp_path / "y.txt", b"1\nx\n2\n3\x00\n")
    assert message == f"labels (file {tmp_path / 'y.txt'}): line 2 is 'x'; {SYNTAX}"
    message = refused(tmp_path / "z.txt", b"1\n2\n3\n\x00\x01\x02")
    assert message == (
        f"labels (file {tmp_path / 'z.txt'}): contains NUL bytes (the first on line 4): "
        "binary data, not one integer per line (a .npy file without its header?)"
    )


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_line_numbers_across_chunks(tmp_path, monkeypatch, chunk):
    # whatever the chunk size, the reported line is the first bad line of the file
    monkeypatch.setattr(files, "TEXT_CHUNK", chunk)
    lines = [b"%d" % (i % 7) for i in range(500)]
    lines[311] = b"3\xc2\xa0"  # a non-breaking space
    lines[400] = b"8" * 80
    message = refused(tmp_path / "y.txt", b"\n".join(lines) + b"\n")
    assert message == (
        f"labels (file {tmp_path / 'y.txt'}): line 312 is '3\\xa0'; {SYNTAX}; "
        "'\\xa0' is U+00A0 NO-BREAK SPACE"
    )


def test_scores_from_a_text_file_are_unchanged(tmp_path, rng, make_theta):
    theta = make_theta(rng, 300, 6)
    y = rng.integers(0, 4, 300)
    np.save(tmp_path / "p.npy", theta)
    (tmp_path / "y.txt").write_text("".join(f" {v}\t\r\n" for v in y))
    r = score_files(tmp_path / "p.npy", tmp_path / "y.txt", block_size=41)
    expected = leepfast.score(theta, y)
    assert r.leep == pytest.approx(expected.leep, rel=1e-12)
    assert r.nce == pytest.approx(expected.nce, rel=1e-12)


def test_cli_prints_the_line_on_one_line(tmp_path, rng, make_theta, capsys):
    from leepfast import cli

    np.save(tmp_path / "p.npy", make_theta(rng, 3, 2))
    (tmp_path / "y.txt").write_bytes("0\n1\n\u0663\n".encode())
    argv = ["score", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "y.txt")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(r"line 3 is '\u0663'; .*U\+0663 ARABIC-INDIC DIGIT THREE", err)


# ---------------------------------------------------------------------------------------
# a column of a CSV, TSV or Parquet file (issue 15 item 6)


def test_labels_from_a_csv_column(tmp_path, rng, make_theta):
    theta = make_theta(rng, 300, 5)
    y = rng.integers(0, 4, 300)
    np.save(tmp_path / "p.npy", theta)
    lines = ["id,label,split"] + [f"img{i},{v},train" for i, v in enumerate(y)]
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "meta.tsv").write_text("\n".join(x.replace(",", "\t") for x in lines))
    expected = leepfast.score(theta, y)
    for name in ("meta.csv", "meta.tsv"):
        labels = open_labels(f"{tmp_path / name}:label")
        assert (labels.format, labels.column, labels.n_samples) == ("csv", "label", 300)
        r = score_files(tmp_path / "p.npy", f"{tmp_path / name}:label", block_size=64)
        assert r.leep == pytest.approx(expected.leep, rel=1e-15)
        assert r.nce == pytest.approx(expected.nce, rel=1e-15)


def test_bad_csv_label_columns(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("id,label\na,1\nb,2\n")
    with pytest.raises(FileFormatError) as err:
        open_labels(f"{path}:target")
    assert str(err.value) == (
        f"labels (file {path}): has no column 'target'; its columns are 'id', 'label'"
    )
    path.write_text("id,label\na,1\nb\n")
    with pytest.raises(FileFormatError, match="line 3 has no 'label' field"):
        open_labels(f"{path}:label")
    path.write_text("id,label\na,1\nb,-2\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 3\) is -2; expected labels >= 0"):
        open_labels(f"{path}:label").check_range()


def test_a_path_with_a_colon_is_a_path(tmp_path):
    odd = tmp_path / "y.csv:label"
    odd.write_text("1\n2\n")
    assert open_labels(str(odd)).format == "text"


def test_labels_from_a_parquet_column(tmp_path, rng, make_theta):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    theta = make_theta(rng, 300, 5)
    y = rng.integers(0, 4, 300)
    pq.write_table(
        pa.table({"label": y, "as_float": y.astype(float)}),
        tmp_path / "meta.parquet",
        row_group_size=64,
    )
    expected = leepfast.score(theta, y).leep
    np.save(tmp_path / "p.npy", theta)
    for column in ("label", "as_float"):
        got = score_files(tmp_path / "p.npy", f"{tmp_path / 'meta.parquet'}:{column}")
        assert got.leep == pytest.approx(expected, rel=1e-15)
    pq.write_table(pa.table({"label": [0.0, 0.5]}), tmp_path / "bad.parquet")
    with pytest.raises(FileFormatError, match=r"row 1 is 0.5; expected integer labels"):
        open_labels(f"{tmp_path / 'bad.parquet'}:label")
    pq.write_table(pa.table({"label": [0, None]}), tmp_path / "null.parquet")
    with pytest.raises(FileFormatError, match="row 1 is null"):
        open_labels(f"{tmp_path / 'null.parquet'}:label")


def test_class_names_from_a_table_column(tmp_path, rng, make_theta):
    # a column of names, as metadata files hold them: numbered in sorted order over the
    # whole column, as strings in memory are, the mapping in Result.classes
    theta = make_theta(rng, 300, 5)
    names = np.array(["tabby cat", "dog", "émeu", "ant"])[rng.integers(0, 4, 300)]
    np.save(tmp_path / "p.npy", theta)
    lines = ["id,label"] + [f"img{i},{v}" for i, v in enumerate(names)]
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "meta.tsv").write_text("\n".join(x.replace(",", "\t") for x in lines))
    expected = leepfast.score(theta, names)
    assert expected.classes == ("ant", "dog", "tabby cat", "émeu")
    sources = [f"{tmp_path / 'meta.csv'}:label", f"{tmp_path / 'meta.tsv'}:label"]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"label": names, "cat": pa.array(names).dictionary_encode()})
    pq.write_table(table, tmp_path / "meta.parquet", row_group_size=64)
    sources += [f"{tmp_path / 'meta.parquet'}:label", f"{tmp_path / 'meta.parquet'}:cat"]
    for source in sources:
        labels = open_labels(source)
        assert labels.classes == expected.classes
        assert (labels.n_samples, labels.low, labels.high) == (300, 0, 3)
        for r in (
            score_files(tmp_path / "p.npy", source, block_size=64),
            leepfast.score(str(tmp_path / "p.npy"), source),
        ):
            assert r.classes == expected.classes
            assert r.leep == pytest.approx(expected.leep, rel=1e-15)
            assert r.nce == pytest.approx(expected.nce, rel=1e-15)
            np.testing.assert_array_equal(r.class_counts, expected.class_counts)
            np.testing.assert_allclose(r.joint, expected.joint, rtol=1e-14)


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        (("1", "2", "x"), "an integer label as on line 2 ('1')"),
        (("cat", "dog", "3"), "a class name as on line 2 ('cat')"),
    ],
)
def test_a_csv_column_of_both_kinds_or_with_an_empty_field_is_refused(
    tmp_path, fields, said
):
    path = tmp_path / "meta.csv"
    path.write_text(
        "id,label\n" + "".join(f"{c},{v}\n" for c, v in zip("abc", fields, strict=True))
    )
    with pytest.raises(FileFormatError) as err:
        open_labels(f"{path}:label")
    assert str(err.value) == (
        f"labels (file {path}): line 4 is {fields[2]!r}; expected {said}: a column "
        f"holds integer labels or class names, not both"
    )
    for text, line in (("id,label\na,cat\nb,\n", 3), ("id,label\na, \nb,1\n", 2)):
        path.write_text(text)
        with pytest.raises(FileFormatError) as err:
            open_labels(f"{path}:label")
        assert str(err.value) == (
            f"labels (file {path}): line {line} has an empty 'label' field; "
            f"expected a label"
        )


def test_cli_labels_from_a_csv_column(tmp_path, rng, make_theta, capsys):
    from leepfast import cli

    theta = make_theta(rng, 200, 4)
    y = rng.integers(0, 3, 200)
    np.save(tmp_path / "p.npy", theta)
    rows = ["file,label"] + [f"{i}.png,{v}" for i, v in enumerate(y)]
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    argv = ["score", str(tmp_path / "p.npy"), "--labels"]
    assert cli.main(argv + [f"{tmp_path / 'meta.csv'}:label", "--json"]) == 0
    out = capsys.readouterr().out
    assert f'"leep": {leepfast.leep(theta, y)!r}' in out
    assert cli.main(argv + [f"{tmp_path / 'meta.csv'}:y"]) == 2
    assert capsys.readouterr().err == (
        f"leepfast: error: labels (file {tmp_path / 'meta.csv'}): has no column 'y'; "
        "its columns are 'file', 'label'\n"
    )
