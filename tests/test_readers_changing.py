"""Files that change between the passes, many shards, closed files (issue 13 items 4,
5, 11). Each case runs in a subprocess, so that a descriptor limit cannot take the test
run down with it."""

import subprocess
import sys
import tempfile
import textwrap

import numpy as np


def run(code, *args, ulimit=None):
    # from a neutral folder: Python started in the clone's root refuses its source tree
    cmd = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    if ulimit is not None:
        import shlex

        cmd = ["sh", "-c", f"ulimit -n {ulimit} && " + shlex.join(cmd)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir()
    )


REDUMP = """
import os, sys, numpy as np
from leepfast import _files, readers
path = sys.argv[1]
theta = np.load(path)
preds = readers.open_predictions(path)
os.replace(path + ".new", path)  # a re-dumping job replaced the file
try:
    _files.score_files(preds, np.zeros(len(theta), dtype=np.int64))
    print("NO ERROR")
except readers.FileFormatError as err:
    print("ERROR", err)
"""


def test_redumped_file_is_refused_naming_it(tmp_path, rng, make_theta):
    # on main the replaced file was scored silently (or the old map was)
    path = tmp_path / "p.npy"
    np.save(path, make_theta(rng, 300, 7))
    with open(str(path) + ".new", "wb") as f:  # np.save would append .npy
        np.save(f, make_theta(rng, 300, 7))
    out = run(REDUMP, path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"ERROR predictions (file {path}): changed since"), (
        out.stdout
    )


MANY = """
import sys, numpy as np, leepfast
from leepfast import _files, readers
d = sys.argv[1]
n = int(sys.argv[2])
theta = np.load(d + "/all.npy")
y = np.arange(len(theta)) % 3
r = _files.score_files(sorted(d + f"/s/part-{i:05d}.npy" for i in range(n)), y)
e = leepfast.score(theta, y)
print(abs(r.leep - e.leep) / abs(e.leep) < 1e-12, r.n_samples)
"""


def test_more_shards_than_descriptors(tmp_path, rng, make_theta):
    # 1100 shards under ulimit -n 256: on main "[Errno 24] Too many open files"
    n = 1100
    theta = make_theta(rng, 2 * n, 4)
    np.save(tmp_path / "all.npy", theta)
    (tmp_path / "s").mkdir()
    for i in range(n):
        np.save(tmp_path / "s" / f"part-{i:05d}.npy", theta[2 * i : 2 * i + 2])
    out = run(MANY, tmp_path, n, ulimit=256)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", str(2 * n)]


def test_a_closed_predictions_object_is_a_clear_error(tmp_path, rng, make_theta):
    import pytest

    from leepfast import _files, readers

    path = tmp_path / "p.npy"
    np.save(path, make_theta(rng, 20, 3))
    preds = readers.open_predictions(path)
    preds.close()
    with pytest.raises(
        ValueError,
        match=r"^predictions: .*p.npy was closed; open the "
        r"predictions again$",
    ):
        _files.score_files(preds, np.zeros(20, dtype=np.int64))


def test_a_dump_that_shrinks_while_it_is_scored_is_an_error_not_sigbus(tmp_path):
    # issue 13 item 3: a block past the new end of a truncated file killed the process
    # with SIGBUS (no message, finally blocks skipped); each block now checks the file
    # first. In a child process, so that the failure before the fix is visible.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import os, numpy as np, leepfast
        from leepfast import _api
        path = {str(tmp_path / "p.npy")!r}
        z = 512
        np.save(path, np.full((4096, z), 1.0 / z, dtype=np.float32))
        real, calls = _api.Accumulator.step, []
        def step(self, pass_, block, **kw):
            out = real(self, pass_, block, **kw)
            if not calls:  # after the first block: another job truncates the dump
                os.truncate(path, 4096)
            calls.append(1)
            return out
        _api.Accumulator.step = step
        try:
            leepfast.score_files(path, np.zeros(4096, dtype=np.int64), block_size=256)
        except leepfast.FileFormatError as err:
            print("raised:", err)
        finally:
            print("finally ran")
        """
    )
    p = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert p.stdout == (
        f"raised: predictions (file {tmp_path / 'p.npy'}): changed since it was opened "
        f"(size, modification time or inode differ): was it re-dumped? Score it again "
        f"from the start\nfinally ran\n"
    )
