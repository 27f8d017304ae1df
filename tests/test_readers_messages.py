"""Messages of the file readers (issue 13 item 9, the file parts).

A stray README.txt in a folder of .npy shards gave a dtype error naming no file; a dump
larger than the address-space limit gave a bare "[Errno 12] Cannot allocate memory" at
mmap. Each is now one error naming the file (and, for the map, its size and RLIMIT_AS).
"""

import errno
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import leepfast
from leepfast import FileFormatError, cli, open_predictions, score_files


@pytest.fixture
def folder(tmp_path, rng, make_theta):
    d = tmp_path / "shards"
    d.mkdir()
    parts = [make_theta(rng, n, 3) for n in (5, 7)]
    for i, part in enumerate(parts):
        np.save(d / f"part-{i}.npy", part)
    (d / "README.txt").write_text("made by job 17\n")
    return d, parts


def stray_message(d):
    return (
        f"predictions (file {d / 'README.txt'}): is not a .npy file, in directory "
        f"{str(d)!r} of .npy shards, which holds 1 file(s) that are not .npy "
        f"('README.txt'): move them out of the folder, or pass the shards as a glob "
        f"({str(d / '*.npy')!r}) or a list"
    )


@pytest.mark.parametrize("raw_args", [{}, {"dtype": "float32", "n_source": 3}])
def test_stray_file_in_a_folder_of_shards_is_named(folder, raw_args):
    d, _ = folder
    with pytest.raises(FileFormatError) as err:
        open_predictions(d, **raw_args)
    assert str(err.value) == stray_message(d)
    assert err.value.argument == "predictions"


def test_stray_file_cli_one_line(folder, tmp_path, capsys):
    d, _ = folder
    np.save(tmp_path / "y.npy", np.zeros(12, dtype=np.int64))
    assert cli.main(["score", str(d), "--labels", str(tmp_path / "y.npy")]) == 2
    assert capsys.readouterr().err == f"leepfast: error: {stray_message(d)}\n"


def test_the_glob_the_message_proposes_reads_the_shards(folder, rng):
    d, parts = folder
    y = rng.integers(0, 2, 12)
    r = score_files(str(d / "*.npy"), y)
    assert r.leep == pytest.approx(leepfast.score(np.concatenate(parts), y).leep, rel=1e-12)


def test_folder_of_raw_shards_is_still_read(tmp_path, rng, make_theta):
    d = tmp_path / "raw"
    d.mkdir()
    parts = [make_theta(rng, n, 4).astype(np.float32) for n in (3, 6)]
    for i, part in enumerate(parts):
        part.tofile(d / f"part-{i}.f32")
    y = rng.integers(0, 3, 9)
    r = score_files(d, y, dtype="float32", n_source=4)
    assert r.leep == pytest.approx(leepfast.score(np.concatenate(parts), y).leep, rel=1e-12)


def test_raw_file_without_dtype_is_named(tmp_path):
    (tmp_path / "p.bin").write_bytes(b"\0" * 40)
    with pytest.raises(TypeError) as err:
        open_predictions(tmp_path / "p.bin", n_source=5)
    assert str(err.value) == (
        "dtype: raw (non-.npy) prediction files need a dtype (float16, float32 or "
        f"float64) and n_source; {tmp_path / 'p.bin'} is one (its name does not end in "
        ".npy and it does not start with the .npy magic string)"
    )
    with pytest.raises(TypeError) as err:
        open_predictions(tmp_path / "p.bin", dtype="float32")
    assert str(err.value) == (
        "n_source: raw (non-.npy) prediction files need n_source, the number of values "
        f"per row; {tmp_path / 'p.bin'} is one (its name does not end in .npy and it "
        "does not start with the .npy magic string)"
    )


LIMITED = """
import resource, sys
limit = 4 << 30
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
import numpy as np
from leepfast import _files, cli
path, n = sys.argv[1], int(sys.argv[2])
if sys.argv[3] == "cli":
    sys.exit(cli.main(["score", path, "--labels", sys.argv[4], "--no-progress"]))
try:
    _files.score_files(path, np.zeros(n, dtype=np.int64))
    print("NO ERROR")
except OSError as err:
    print(err.errno, err)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_dump_larger_than_the_address_space_limit(tmp_path):
    # a sparse 6 GiB .npy (no disk used) under a 4 GiB address-space limit
    n, z = 805_306, 1000
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (n, z)}
        )
        f.truncate(f.tell() + n * z * 8)
    message = (
        f"predictions (file {path}): cannot memory-map its 6,442,448,000 bytes of data "
        "(6 GiB): the address space of this process is limited to 4,294,967,296 bytes "
        "(4 GiB, RLIMIT_AS; ulimit -v 4194304), less than the map needs with what is "
        "already mapped: raise the limit (ulimit -v unlimited) or split the dump into "
        "shards (mapped one at a time)"
    )

    def run(*args):
        cmd = [sys.executable, "-c", textwrap.dedent(LIMITED), str(path), str(n), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=300, cwd=tempfile.gettempdir()
        )

    api = run("api")
    assert api.returncode == 0, api.stderr
    assert api.stdout == f"{errno.ENOMEM} {message}\n"
    np.save(tmp_path / "y.npy", np.zeros(n, dtype=np.int8))
    proc = run("cli", str(tmp_path / "y.npy"))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"leepfast: error: {message}\n"


def test_bytes_paths_are_paths_for_predictions_and_labels(tmp_path):
    # issue 13 item 11: a bytes path gave "predictions: expected paths, got int"
    p = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1, 0, 1])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    want = leepfast.score(p, y).leep
    for preds in (os.fsencode(tmp_path / "p.npy"), [os.fsencode(tmp_path / "p.npy")]):
        got = leepfast.score_files(preds, os.fsencode(tmp_path / "y.npy"))
        assert got.leep == pytest.approx(want, rel=1e-14)
