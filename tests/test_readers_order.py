"""The order of shards (issue 13 item 14).

Directories and globs were sorted as strings, so part-10.npy came before part-2.npy and
rows no longer lined up with their labels: a wrong LEEP, no warning. Names now sort with
numbers read as numbers; against labels from one file, names whose numeric and string
orders disagree are refused (the file may follow either); a list is read as given;
``leepfast score -v`` lists the order it reads.
"""

import json
import os
import random

import numpy as np
import pytest

import leepfast
from leepfast import cli, open_predictions, score_files
from leepfast._errors import InputError
from leepfast.readers.order import check_label_order, disagreement, natural_sorted

SIZES = [5, 9, 3, 14, 7, 2, 11, 6, 8, 4, 10, 13]  # rows of part-1 ... part-12


def test_natural_order_is_total_and_reads_numbers_as_numbers():
    names = ["part-10.npy", "part-2.npy", "part-1.npy", "part-02.npy", "part-1a.npy"]
    names += ["part-.npy", "a9", "a10b", "a10a", "b", "part-002.npy"]
    expected = ["a9", "a10a", "a10b", "b", "part-1.npy", "part-1a.npy", "part-002.npy"]
    # equal numbers: the plain string decides; "part-" sorts before "part-.npy"
    expected += ["part-02.npy", "part-2.npy", "part-10.npy", "part-.npy"]
    for seed in range(5):
        random.Random(seed).shuffle(names)
        assert natural_sorted(names) == expected
    assert disagreement(["part-1", "part-2", "part-10"]) == ("part-2", "part-10")
    assert disagreement(["part-01", "part-02", "part-10"]) is None


@pytest.fixture
def shards(tmp_path, rng, make_theta):
    """part-1.npy ... part-12.npy, each its own row count: (dir, arrays in natural
    order)."""
    d = tmp_path / "shards"
    d.mkdir()
    parts = [make_theta(rng, n, 5) for n in SIZES]
    for i, theta in enumerate(parts, start=1):
        np.save(d / f"part-{i}.npy", theta)
    return d, parts


def test_directory_and_glob_read_in_natural_order(shards, rng):
    d, parts = shards
    theta = np.concatenate(parts)
    y = rng.integers(0, 4, len(theta))
    with open_predictions(d) as preds:
        names = [os.path.basename(f.path) for f in preds.files]
    assert names == [f"part-{i}.npy" for i in range(1, 13)]
    expected = leepfast.score(theta, y)
    for source in (d, str(d / "part-*.npy")):
        r = score_files(source, y)
        assert r.leep == pytest.approx(expected.leep, rel=1e-12)
        assert r.nce == pytest.approx(expected.nce, rel=1e-12)
    # the string order (1, 10, 11, 12, 2, ...) is another dataset: what was read before
    by_string = sorted(range(12), key=lambda i: f"part-{i + 1}.npy")
    wrong = leepfast.score(np.concatenate([parts[i] for i in by_string]), y)
    assert abs(wrong.leep - expected.leep) > 1e-3


def refusal(source, labels):
    return (
        f"predictions: {source!r} stands for shards whose order depends on how names "
        "are sorted: 'part-2.npy' comes before 'part-10.npy' with numbers read as "
        "numbers (leepfast's order), after it sorted as strings (ls, shell globs, "
        f"sorted()); the labels in {labels} are one file and follow one of the two "
        "orders: pass the shards as a list in the order of the labels (a list is read "
        "as given; in a shell, e.g. part-{1..12}.npy), or give the numbers in the "
        "names one width (part-02 ... part-10)"
    )


def test_ambiguous_names_with_a_label_file_are_refused(shards, rng, tmp_path):
    d, parts = shards
    y = rng.integers(0, 4, sum(SIZES))
    np.save(tmp_path / "y.npy", y)
    for source in (str(d), str(d / "part-*.npy")):
        with open_predictions(source) as preds:
            with pytest.raises(InputError) as err:
                check_label_order(preds, str(tmp_path / "y.npy"))
            assert str(err.value) == refusal(source, tmp_path / "y.npy")
            assert err.value.argument == "predictions"
            check_label_order(preds, y)  # labels in memory: not one file
            assert preds.order_conflicts == [
                (source, str(d / "part-2.npy"), str(d / "part-10.npy"))
            ]


def test_score_files_and_rank_refuse_ambiguous_names(shards, rng, tmp_path):
    d, _ = shards
    labels = tmp_path / "y.npy"
    np.save(labels, rng.integers(0, 4, sum(SIZES)))
    with pytest.raises(InputError) as err:
        score_files(str(d), str(labels))
    assert str(err.value) == refusal(str(d), labels)
    with pytest.raises(InputError) as err:
        leepfast.rank({"a": str(d)}, str(labels))
    assert str(err.value) == refusal(str(d), labels)


def test_cli_refuses_ambiguous_names_in_one_line(shards, rng, tmp_path, capsys):
    d, _ = shards
    np.save(tmp_path / "y.npy", rng.integers(0, 4, sum(SIZES)))
    argv = ["score", str(d), "--labels", str(tmp_path / "y.npy"), "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"leepfast: error: {refusal(str(d), tmp_path / 'y.npy')}\n"


def test_an_explicit_list_is_read_as_given(shards, rng, tmp_path, capsys):
    d, parts = shards
    order = list(range(12))
    random.Random(3).shuffle(order)
    theta = np.concatenate([parts[i] for i in order])
    y = rng.integers(0, 4, len(theta))
    np.save(tmp_path / "y.npy", y)
    paths = [str(d / f"part-{i + 1}.npy") for i in order]
    expected = leepfast.score(theta, y)
    with open_predictions(paths) as preds:
        assert [f.path for f in preds.files] == paths
        assert preds.order_conflicts == []
        check_label_order(preds, str(tmp_path / "y.npy"))
    r = score_files(paths, tmp_path / "y.npy")
    assert r.leep == pytest.approx(expected.leep, rel=1e-12)
    argv = ["score", *paths, "--labels", str(tmp_path / "y.npy"), "--json", "-v"]
    assert cli.main(argv + ["--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["leep"] == pytest.approx(expected.leep, rel=1e-12)
    assert err == "".join(
        f"leepfast: file {k}: {p} ({SIZES[i]} rows)\n"
        for k, (i, p) in enumerate(zip(order, paths, strict=True))
    )


def test_names_of_one_width_are_not_refused_and_v_lists_them(
    tmp_path, rng, make_theta, capsys
):
    d = tmp_path / "d"
    d.mkdir()
    parts = [make_theta(rng, n, 3) for n in (4, 6, 5)]
    for i in (10, 2, 1):  # written out of order
        np.save(d / f"part-{i:02d}.npy", parts[[1, 2, 10].index(i)])
    y = rng.integers(0, 3, 15)
    (tmp_path / "y.txt").write_text("\n".join(map(str, y)))
    argv = ["score", str(d), "--labels", str(tmp_path / "y.txt"), "--json", "--verbose"]
    assert cli.main(argv + ["--no-progress"]) == 0
    out, err = capsys.readouterr()
    expected = leepfast.score(np.concatenate(parts), y)
    assert json.loads(out)["leep"] == pytest.approx(expected.leep, rel=1e-12)
    assert err == (
        f"leepfast: file 0: {d / 'part-01.npy'} (4 rows)\n"
        f"leepfast: file 1: {d / 'part-02.npy'} (6 rows)\n"
        f"leepfast: file 2: {d / 'part-10.npy'} (5 rows)\n"
    )
