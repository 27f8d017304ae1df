"""The command line, run as real subprocesses on real files in tmp_path."""

import fcntl
import json
import math
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

import numpy as np
import pytest

import leepfast
from leepfast.cli import kendall_tau_b

RTOL = 1e-12


def run(*args, cwd=None, **kwargs):
    """``python -m leepfast ARGS``; returns the CompletedProcess (text mode).

    Never run from the source tree (``-m`` puts the working directory on sys.path, which
    would import the uncompiled sources instead of the installed package).
    """
    return subprocess.run(
        [sys.executable, "-m", "leepfast", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or tempfile.gettempdir(),
        timeout=300,
        **kwargs,
    )


def table(stdout):
    """The ``key value`` lines of ``leepfast score`` as a dict."""
    out = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("  ")
        out[key.strip()] = value.strip()
    return out


@pytest.fixture
def files(tmp_path, rng, make_theta, make_labels):
    theta = make_theta(rng, 3000, 20, dtype=np.float32)
    y = make_labels(rng, 3000, 6)
    np.save(tmp_path / "p.npy", theta)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "y.txt").write_text("\n".join(map(str, y)) + "\n")
    return tmp_path, theta, y


# ---------------------------------------------------------------------------------------
# score


def test_score_table(files):
    tmp, theta, y = files
    expected = leepfast.score(theta, y)
    p = run("score", "p.npy", "--labels", "y.npy", cwd=tmp)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no progress bar: stderr is not a terminal
    t = table(p.stdout)
    assert float(t["LEEP"]) == pytest.approx(expected.leep, abs=1e-6)
    assert float(t["NCE"]) == pytest.approx(expected.nce, abs=1e-6)
    assert (t["n"], t["Z (source)"], t["Y (target)"]) == ("3000", "20", "6")
    assert t["time"].endswith(" s") and "GB/s" in t["throughput"]
    assert t["predictions"] == "p.npy (1 file, 0.24 MB, float32)"


def test_score_json_shards_raw_and_text_labels(files):
    tmp, theta, y = files
    theta[:1234].tofile(tmp / "a.f32")
    theta[1234:].tofile(tmp / "b.f32")
    expected = leepfast.score(theta, y)
    p = run(
        "score",
        "a.f32",
        "b.f32",
        "--dtype",
        "float32",
        "--n-source",
        20,
        "--labels",
        "y.txt",
        "--json",
        "--block-size",
        500,
        "--threads",
        1,
        cwd=tmp,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"leep", "nce", "n_samples", "n_source", "n_target"} <= set(out)
    assert (out["n_samples"], out["n_source"], out["n_target"]) == (3000, 20, 6)
    np.testing.assert_allclose(
        [out["leep"], out["nce"]], [expected.leep, expected.nce], rtol=RTOL
    )
    assert out["files"] == ["a.f32", "b.f32"] and out["bytes"] == theta.nbytes


def test_score_quoted_glob_and_logits(files):
    tmp, theta, y = files
    logits = np.log(theta.astype(np.float64) + 1e-9) + 3.0
    for i in range(3):
        np.save(tmp / f"z-{i}.npy", logits[i * 1000 : (i + 1) * 1000])
    expected = leepfast.score(logits, y, logits=True)
    p = run(
        "score",
        "z-*.npy",
        "--logits",
        "--labels",
        "y.npy",
        "--json",
        "--n-target",
        9,
        "--backend",
        "numpy",
        cwd=tmp,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["files"] == ["z-0.npy", "z-1.npy", "z-2.npy"] and out["n_target"] == 9
    assert out["backend"] == "numpy"
    np.testing.assert_allclose(out["leep"], expected.leep, rtol=1e-9)


def test_console_script(files):
    # the [project.scripts] entry point, installed next to this interpreter
    tmp, theta, y = files
    exe = shutil.which("leepfast", path=os.path.dirname(sys.executable))
    assert exe, "the leepfast console script is not installed (pip install .)"
    p = subprocess.run(
        [exe, "score", "p.npy", "--labels", "y.npy", "--json"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["leep"] == pytest.approx(leepfast.leep(theta, y), rel=RTOL)


# ---------------------------------------------------------------------------------------
# rank


def rank_with_accuracy(tmp, *args):
    """``leepfast rank --labels y.npy --accuracy acc.csv ARGS`` run in ``tmp``."""
    return run("rank", "--labels", "y.npy", "--accuracy", "acc.csv", *args, cwd=tmp)


@pytest.fixture
def models(tmp_path, rng, make_models):
    """Three models of decreasing quality on one label set (a directory of shards too)."""
    y, dumps = make_models(rng, 2000, 16, 4, [("good", 0.8), ("fair", 0.4), ("poor", 0.05)])
    np.save(tmp_path / "y.npy", y)
    dumps = {name: d.astype(np.float32) for name, d in dumps.items()}
    np.save(tmp_path / "good.npy", dumps["good"])
    np.save(tmp_path / "poor.npy", dumps["poor"])
    (tmp_path / "fair").mkdir()
    np.save(tmp_path / "fair" / "0.npy", dumps["fair"][:900])
    np.save(tmp_path / "fair" / "1.npy", dumps["fair"][900:])
    return tmp_path, dumps, y


def test_rank_table_sorted_by_leep(models):
    tmp, dumps, y = models
    p = run("rank", "--labels", "y.npy", "poor.npy", "fair", "good.npy", cwd=tmp)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["rank", "model", "LEEP", "NCE"]
    rows = [line.split() for line in lines[1:]]
    assert [r[1] for r in rows] == ["good", "fair", "poor"]
    for r in rows:
        expected = leepfast.score(dumps[r[1]], y)
        assert float(r[2]) == pytest.approx(expected.leep, abs=1e-6)
        assert float(r[3]) == pytest.approx(expected.nce, abs=1e-6)


def test_rank_accuracy_and_kendall_tau(models):
    tmp, dumps, y = models
    # accuracies that disagree with LEEP on one pair: tau = (2 - 1) / 3
    (tmp / "acc.csv").write_text("model,accuracy\ngood,0.9\nfair,0.5\npoor,0.6\n")
    p = rank_with_accuracy(tmp, "--json", "poor.npy", "fair", "good.npy")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [m["model"] for m in out["models"]] == ["good", "fair", "poor"]
    assert [m["accuracy"] for m in out["models"]] == [0.9, 0.5, 0.6]
    assert out["models"][1]["files"] == [
        os.path.join("fair", "0.npy"),
        os.path.join("fair", "1.npy"),
    ]
    for m in out["models"]:
        np.testing.assert_allclose(
            m["leep"], leepfast.leep(dumps[m["model"]], y), rtol=RTOL
        )
    assert out["kendall_tau_b"]["leep"] == pytest.approx(1 / 3)
    p = rank_with_accuracy(tmp, "poor.npy", "fair", "good.npy")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split() == ["rank", "model", "LEEP", "NCE", "accuracy"]
    assert "Kendall tau-b with accuracy over 3 models: LEEP 0.333" in p.stdout


def test_rank_missing_accuracy(models):
    tmp, _, _ = models
    (tmp / "acc.csv").write_text("good,0.9\nfair,0.5\n")
    p = rank_with_accuracy(tmp, "poor.npy", "good.npy")
    assert p.returncode == 2
    assert p.stderr == (
        "leepfast: error: accuracy (file acc.csv): no line for model "
        "'poor'; it lists fair, good\n"
    )


def test_rank_csv_json_protocol_and_per_model_logits(models, rng):
    tmp, dumps, y = models
    logits = np.log(dumps["fair"].astype(np.float64) + 1e-3) * 2.0 + rng.normal(
        size=dumps["fair"].shape
    )
    np.save(tmp / "fair_logits.npy", logits)
    (tmp / "acc.csv").write_text("good,0.9\nfair,0.5\npoor,0.6\nfair_logits,0.45\n")
    args = [
        "poor.npy",
        "fair",
        "good.npy",
        "fair_logits.npy",
        "--logits-for",
        "fair_logits",
    ]
    p = rank_with_accuracy(tmp, *args, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    by = {m["model"]: m for m in out["models"]}
    np.testing.assert_allclose(
        by["fair_logits"]["leep"], leepfast.leep(logits, y, logits=True), rtol=RTOL
    )
    assert by["fair_logits"]["logits"] is True and by["good"]["logits"] is False
    leeps = [m["leep"] for m in out["models"]]
    acc = [m["accuracy"] for m in out["models"]]
    from scipy import stats

    c = out["correlations"]["leep"]
    assert c["weighted_tau"] == pytest.approx(stats.weightedtau(leeps, acc).statistic)
    assert c["pearson"] == pytest.approx(stats.pearsonr(leeps, acc).statistic)
    assert (c["top1"], c["top1_hit"], c["regret"]) == ("good", True, 0.0)
    p = rank_with_accuracy(tmp, *args, "--csv")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert (
        lines[0]
        == "rank,model,leep,nce,accuracy,n_samples,n_source,n_target,logits,seconds"
    )
    first = lines[1].split(",")
    assert first[:2] == ["1", "good"] and float(first[2]) == by["good"]["leep"]
    assert len(lines) == 5
    p = rank_with_accuracy(tmp, *args)
    assert "top-1: LEEP picks good (hit, regret 0.0000)" in p.stdout
    p = rank_with_accuracy(tmp, *args[:-2], "--logits-for", "nope")
    assert p.returncode == 2
    assert p.stderr == (
        "leepfast: error: --logits-for: no model 'nope'; the models are "
        "poor, fair, good, fair_logits\n"
    )


def test_rank_checks_every_model_before_scoring_any(models):
    """13.18: the first model is bad (a NaN), the last lacks its accuracy line, its file,
    or one row: the last model's fault is reported, so nothing was scored first."""
    tmp, dumps, y = models
    bad = dumps["good"].copy()
    bad[5, 0] = np.nan
    np.save(tmp / "nan.npy", bad)
    np.save(tmp / "short.npy", dumps["good"][:-1])
    (tmp / "acc.csv").write_text("nan,0.9\ngood,0.5\n")
    p = rank_with_accuracy(tmp, "nan.npy", "good.npy", "poor.npy")
    assert p.returncode == 2
    assert p.stderr == (
        "leepfast: error: accuracy (file acc.csv): no line for model "
        "'poor'; it lists good, nan\n"
    )
    p = run("rank", "--labels", "y.npy", "nan.npy", "good.npy", "gone.npy", cwd=tmp)
    assert p.returncode == 2
    assert (
        p.stderr == "leepfast: error: predictions: no such file or directory: 'gone.npy'\n"
    )
    p = run("rank", "--labels", "y.npy", "nan.npy", "short.npy", cwd=tmp)
    assert p.returncode == 2
    assert p.stderr == (
        "leepfast: error: models['short'] (file short.npy): has 1999 rows "
        "of predictions; expected 2000, one per label in labels (file "
        "y.npy)\n"
    )


def test_accuracy_csv_field_over_the_csv_limit_is_one_line(models):
    """13.7: a field over 128 KiB is csv's _csv.Error: one line, exit 2."""
    tmp, _, _ = models
    (tmp / "acc.csv").write_text("good," + "9" * (200 << 10) + "\n")
    p = run("rank", "--labels", "y.npy", "--accuracy", "acc.csv", "good.npy", cwd=tmp)
    assert p.returncode == 2
    assert p.stderr.startswith(
        "leepfast: error: accuracy (file acc.csv): line 1: field larger than field limit"
    ), p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "x, y, tau",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([1, 2, 2, 3], [1, 2, 3, 4], 5 / math.sqrt(5 * 6)),  # one tie in x
        ([1, 1, 2, 2], [1, 2, 1, 2], 0.0),
        ([3, 1, 2], [1, 2, 3], -1 / 3),
    ],
)
def test_kendall_tau_b_hand_computed(x, y, tau):
    assert kendall_tau_b(x, y) == pytest.approx(tau, abs=1e-15)
    assert kendall_tau_b(y, x) == pytest.approx(tau, abs=1e-15)


def test_kendall_tau_b_numpy_inputs():
    x, y = np.array([0.1, 0.3, 0.2], dtype=np.float32), np.array([1, 3, 2])
    assert kendall_tau_b(x, y) == 1.0
    assert kendall_tau_b(np.array([True, False]), [0, 1]) == -1.0
    with pytest.raises(ValueError, match="lengths differ"):
        kendall_tau_b([1, 2], [1])


def test_kendall_tau_b_undefined():
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau_b([1], [2]))


# ---------------------------------------------------------------------------------------
# errors: one line on stderr, exit code 2, no traceback


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["score", "nope.npy", "--labels", "y.npy"],
            "predictions: no such file or directory: 'nope.npy'",
        ),
        (
            ["score", "bad.npy", "--labels", "y.npy"],
            "predictions (file bad.npy): not a .npy",
        ),
        (
            ["score", "p.npy", "--labels", "short.npy"],
            "labels (file short.npy): expected 3000 labels",
        ),
        (
            ["score", "p.npy", "--labels", "y.npy", "--n-target", "3"],
            "labels (file y.npy): row ",
        ),
        (
            ["score", "nan.npy", "--labels", "y.npy"],
            "predictions (file nan.npy): row 2999 contains NaN or infinity",
        ),
        (
            ["score", "p.f32", "--labels", "y.npy"],
            "--dtype: raw (non-.npy) prediction files",
        ),
        (
            [
                "score",
                "p.f32",
                "--dtype",
                "float32",
                "--n-source",
                "7",
                "--labels",
                "y.npy",
            ],
            "predictions (file p.f32): has 240000 bytes, not a multiple of the row size 28",
        ),
        (["score", "p.npy", "--labels", "y.npy", "--threads", "0"], "--threads: expected"),
        (
            ["score", "p.npy", "--labels", "y.npy", "--block-size", "0"],
            "--block-size: expected a positive integer, got 0",
        ),
        (
            ["score", "p.npy", "--labels", "y.npy", "--n-target", "0"],
            "--n-target: expected a positive integer, got 0",
        ),
        (
            ["score", "un.npy", "--labels", "y.npy"],
            "predictions (file un.npy): row 7 sums to "
            "1.5; expected probabilities that sum to 1 within 0.0001 "
            "(the float32 tolerance) "
            "(pass --logits if these are logits)",
        ),
        (["score", "p.npy", "--labels", "y.npy", "--dtype", "int8"], "--dtype: expected"),
        (
            ["rank", "--labels", "y.npy", "p.npy", "--accuracy", "missing.csv"],
            "missing.csv: No such file or directory",
        ),
    ],
)
def test_errors_one_line_exit_2(files, args, message):
    tmp, theta, y = files
    (tmp / "bad.npy").write_bytes(b"garbage")
    np.save(tmp / "short.npy", y[:-1])
    bad = theta.copy()
    bad[-1, 0] = np.inf
    np.save(tmp / "nan.npy", bad)
    theta.tofile(tmp / "p.f32")
    bad = theta.copy()
    bad[7, 0] += 0.5
    np.save(tmp / "un.npy", bad)
    p = run(*args, cwd=tmp)
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith("leepfast: error: " + message), p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.endswith("\n")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (["score", "p.npy"], "score: the following arguments are required: --labels"),
        (
            ["score", "--labels", "y.npy"],
            "score: the following arguments are required: PRED",
        ),
        (
            ["score", "p.npy", "--labels", "y.npy", "--threads", "two"],
            "score: argument --threads: invalid int value: 'two'",
        ),
        (
            ["score", "p.npy", "--labels", "y.npy", "--backend", "fortran"],
            "score: argument --backend: invalid choice: 'fortran'",
        ),
        (
            ["rank", "--labels", "y.npy"],
            "rank: the following arguments are required: MODEL",
        ),
    ],
)
def test_usage_errors_one_line_exit_2(files, args, message):
    tmp, _, _ = files
    p = run(*args, cwd=tmp)
    assert p.returncode == 2
    assert p.stderr.startswith("leepfast: error: " + message), p.stderr
    assert p.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command, options",
    [
        ([], ["score", "rank", "config", "examples:", "130"]),
        (
            ["score"],
            [
                "--labels",
                "--logits",
                "--n-target",
                "--dtype",
                "--n-source",
                "--backend",
                "--threads",
                "--block-size",
                "--json",
                "--no-progress",
                "examples:",
                "leepfast score preds.npy --labels y.npy",
            ],
        ),
        (
            ["rank"],
            [
                "--labels",
                "--accuracy",
                "--json",
                "--csv",
                "--logits-for",
                "examples:",
                "Kendall tau-b",
                "weighted Kendall tau",
                "regret",
                "model,accuracy",
            ],
        ),
        (["config"], ["leepfast config"]),
    ],
)
def test_help_explains_every_option_with_examples(command, options):
    p = run(*command, "--help")
    assert p.returncode == 0 and p.stderr == ""
    for option in options:
        assert option in p.stdout, option


def test_config_prints_show_config():
    p = run("config")
    assert p.returncode == 0
    assert p.stdout.startswith(f"leepfast        {leepfast.__version__}\n")
    assert "backends" in p.stdout and "default threads" in p.stdout


def test_version():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"leepfast {leepfast.__version__}"


# ---------------------------------------------------------------------------------------
# a big file: Ctrl-C, the progress bar, and the bounded anonymous memory


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 256 MB float32 dump (n = 2**20 rows, Z = 64) and its labels (Y = 100)."""
    tmp = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(7)
    n, z = 1 << 20, 64
    out = np.lib.format.open_memmap(
        tmp / "big.npy", mode="w+", dtype=np.float32, shape=(n, z)
    )
    for a in range(0, n, 1 << 17):
        part = rng.random((1 << 17, z), dtype=np.float32) + 0.01
        out[a : a + (1 << 17)] = part / part.sum(axis=1, keepdims=True)
    out.flush()
    del out
    np.save(tmp / "y.npy", rng.integers(0, 100, n))
    return tmp


def _status(pid, field):
    """A field of /proc/<pid>/status in kB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _wait_until_mapped(proc, path, limit=120):
    """Wait until the child has memory-mapped ``path`` (its run has started)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/maps") as f:
                if str(path) in f.read():
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)


def _sigint_default():
    """In the child: SIGINT as a terminal user has it. A parent started in the
    background by a non-interactive shell ignores SIGINT, children inherit that, and
    Python then leaves it ignored; these tests are about the CLI, not their parent."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _long_score(big, tmp_path):
    """argv of a `leepfast score` that runs for seconds on any machine: the NumPy backend
    over the 256 MB dump given as 8 shards (2 GB a pass, 9 s here). One copy can end in
    under a second on a fast machine, before a signal or the progress bar's first draw."""
    labels = tmp_path / "y8.npy"
    np.save(labels, np.tile(np.load(big / "y.npy"), 8))
    return [
        sys.executable,
        "-m",
        "leepfast",
        "score",
        *["big.npy"] * 8,
        "--labels",
        str(labels),
        "--backend",
        "numpy",
        "--block-size",
        "8192",
        "--n-target",
        "1000",
    ]


def test_ctrl_c_exit_130_one_line(big, tmp_path):
    proc = subprocess.Popen(
        _long_score(big, tmp_path),
        cwd=big,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    _wait_until_mapped(proc, big / "big.npy")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err == "leepfast: interrupted\n"
    assert out == ""


def test_progress_bar_on_a_terminal(big, tmp_path):
    # stderr is a pseudo-terminal: after a second a bar with rows and GB/s appears
    argv = _long_score(big, tmp_path)
    leader, follower = pty.openpty()
    # a real terminal has a size (tqdm draws nothing on a 0-row terminal)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        argv,
        cwd=big,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        preexec_fn=_sigint_default,
    )
    os.close(follower)
    seen = b""
    try:
        while b"GB/s" not in seen or b"rows" not in seen:
            ready, _, _ = select.select([leader], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        os.close(leader)
    text = seen.decode("utf8", "replace")
    # which pass the first redraw shows depends on the machine's speed (pass 1 may end
    # before the bar's first second), so either pass counts
    assert "GB/s" in text and "rows" in text and re.search(r"pass [12]/2", text), text
    assert proc.returncode == 130


def test_peak_anonymous_memory_bounded(big, python_c):
    # RssAnon of a process that just imports leepfast and its compiled backend ...
    base = python_c(
        "import leepfast, leepfast.cli, leepfast.backends.cython\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('RssAnon:'): print(line.split()[1])",
        check=True,
        cwd=big,  # not the source tree: the installed package, as the CLI below
    )
    baseline_kb = int(base.stdout)
    # ... against the peak RssAnon, sampled while the CLI scores a 256 MB file in 1 MiB
    # blocks (4096 rows of 64 float32)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leepfast",
            "score",
            "big.npy",
            "--labels",
            "y.npy",
            "--block-size",
            "4096",
            "--threads",
            "1",
            "--backend",
            "cython",
            "--json",
        ],
        cwd=big,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_kb, samples = 0, 0
    while proc.poll() is None:
        kb = _status(proc.pid, "RssAnon")
        if kb is not None:
            peak_kb, samples = max(peak_kb, kb), samples + 1
        time.sleep(0.002)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["n_samples"] == 1 << 20
    assert samples > 10
    file_mb = os.path.getsize(big / "big.npy") / 2**20
    state_kb = 16 * 4 * 100 * 64 // 1024  # (slots + reduced copies) x Y x Z, 16 B each
    extra_kb = peak_kb - baseline_kb
    assert extra_kb < 64 * 1024 + state_kb, (peak_kb, baseline_kb, file_mb)
    assert extra_kb < file_mb * 1024 / 4  # far below the file's size


def test_pickled_npy_never_unpickled_by_the_cli(files, creates_file):
    tmp, _, _ = files
    marker = tmp / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = creates_file(str(marker))
    with open(tmp / "evil.npy", "wb") as f:
        np.lib.format.write_array(f, obj, allow_pickle=True)
    for args in (
        ["score", "evil.npy", "--labels", "y.npy"],
        ["score", "p.npy", "--labels", "evil.npy"],
        ["rank", "--labels", "y.npy", "evil.npy"],
    ):
        p = run(*args, cwd=tmp)
        assert p.returncode == 2
        assert "(file evil.npy): holds Python objects" in p.stderr
        assert p.stderr.count("\n") == 1
    assert not marker.exists()


def test_output_into_a_closed_pipe_is_quiet(tmp_path):
    # `leepfast demo --json | true`: the reader is gone before anything is written
    proc = subprocess.Popen(
        [sys.executable, "-m", "leepfast", "demo", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before the demo (a second of work) prints anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert err == ""


def test_features_command_prints_the_feature_scores(tmp_path, rng):
    from leepfast import _rank, cli

    assert cli.FEATURE_SCORES == _rank.FEATURE_SCORES
    y = rng.integers(0, 3, 400)
    f = rng.normal(size=(400, 5)) + np.eye(5)[y]
    np.save(tmp_path / "f.npy", f)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "both.npz", a=f, b=f[::-1])
    p = run("features", "f.npy", "--labels", "y.npy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "h_score", "regularized_h_score", "logme", "time",
    ]  # fmt: skip
    for line in lines[:3]:
        name, value = line.split()
        assert float(value) == pytest.approx(getattr(leepfast, name)(f, y), abs=1e-6)
    p = run(
        "features", "f.npy", "--labels", "y.npy", "--scores", "gbc", "transrate", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert list(out) == ["gbc", "transrate", "seconds"]
    assert out["gbc"] == leepfast.gbc(f, y) and out["transrate"] == leepfast.transrate(f, y)
    p = run(
        "features", "both.npz", "--labels", "y.npy", "--key", "b", "--json", cwd=tmp_path
    )
    assert json.loads(p.stdout)["logme"] == pytest.approx(leepfast.logme(f[::-1], y))
    for args, said in [
        (["missing.npy"], "leepfast: error: features: no such file or directory: "),
        (["f.npy", "--scores", "leep"], "leepfast: error: features: argument --scores:"),
        (["f.npy", "--scores", "gbc", "--key", "a"], "leepfast: error: --key: gbc reads"),
    ]:
        p = run("features", *args, "--labels", "y.npy", cwd=tmp_path)
        assert p.returncode == 2 and p.stderr.startswith(said), p.stderr
        assert len(p.stderr.splitlines()) == 1 and p.stdout == ""
