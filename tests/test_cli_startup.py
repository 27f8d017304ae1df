"""The program from its first instant (issue 13, items 7 and 13): Ctrl-C and SIGTERM at
start-up and during a run, an import that fails under an address-space limit, and the
lazy package that makes both possible. Every run is the real installed command (or
``python -m leepfast``) in a subprocess, outside the source tree."""

import importlib
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import leepfast

# the console script pip wrote beside this interpreter, and `python -m leepfast`
SCRIPT = shutil.which("leepfast", path=str(Path(sys.executable).parent))
COMMANDS = {"leepfast": [SCRIPT], "python -m leepfast": [sys.executable, "-m", "leepfast"]}
NUMPY_EXTENSION = "_multiarray_umath"  # mapped while `import numpy` runs


def test_the_console_script_is_installed():
    assert SCRIPT is not None, f"no leepfast command beside {sys.executable}"


def _child_signals():
    """In the child: SIGINT and SIGTERM as a terminal user has them (a parent started
    in the background by a non-interactive shell ignores SIGINT, and children inherit
    that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """Float16 logits, 10^6 rows x 32 (64 MB), 1000 target classes, given as 6 shards
    (the same file): `leepfast score` on them with the NumPy backend and one thread runs
    for seconds on any machine (one copy took 0.8 s here, too short to be sure a signal
    finds the run still going)."""
    tmp = tmp_path_factory.mktemp("slow")
    rng = np.random.default_rng(13)
    n, z = 1_000_000, 32
    np.save(tmp / "logits.npy", rng.standard_normal((n, z), dtype=np.float32).astype("f2"))
    np.save(tmp / "y.npy", np.tile(rng.integers(0, 1000, n), SHARDS))
    return tmp


SHARDS = 6


SCORE = [
    "score",
    *["logits.npy"] * SHARDS,
    "--labels",
    "y.npy",
    "--logits",
    "--backend",
    "numpy",
    "--threads",
    "1",
    "--n-target",
    "1000",
    "--no-progress",
]


def _start(command, cwd, **kwargs):
    return subprocess.Popen(
        [*COMMANDS[command], *SCORE],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_child_signals,
        **kwargs,
    )


def _mapped(proc, needle):
    try:
        with open(f"/proc/{proc.pid}/maps") as f:
            return needle in f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_until_mapped(proc, needle, limit=120):
    """Until the child has mapped a file whose path holds ``needle``: polled without
    sleeping, so the signal lands while that import (or run) is under way."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if _mapped(proc, needle):
            return
    raise AssertionError(f"the child never mapped {needle}: {proc.communicate()}")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ctrl_c_right_after_start_never_prints_a_traceback(slow, command):
    # sent as soon as exec returned: the interpreter is not up yet, so SIGINT's default
    # ends the process silently, as it would any program; or it is up, and the program
    # says so in one line. Never a traceback.
    proc = _start(command, slow)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    if proc.returncode == -signal.SIGINT:
        assert err == ""
    else:
        assert (proc.returncode, err) == (130, "leepfast: interrupted\n")
    assert out == ""


INTERRUPTED_LINE = (signal.SIGINT, 130, "leepfast: interrupted\n")
TERMINATED_LINE = (signal.SIGTERM, 143, "leepfast: terminated (SIGTERM)\n")


@pytest.mark.parametrize(
    ("said", "delay"),
    [(INTERRUPTED_LINE, d) for d in (0.0, 0.05, 0.2)] + [(TERMINATED_LINE, 0.0)],
    ids=["sigint-0", "sigint-0.05", "sigint-0.2", "sigterm-0"],
)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_signal_while_the_imports_run_is_one_line(slow, command, said, delay):
    # from the moment `import numpy` maps its extension (the package, its backends and
    # the run follow); before the fix each Ctrl-C here printed a KeyboardInterrupt
    # traceback
    sig, code, line = said
    proc = _start(command, slow)
    _wait_until_mapped(proc, NUMPY_EXTENSION)
    time.sleep(delay)
    assert proc.poll() is None
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err, out) == (code, line, "")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sigterm_during_a_long_score_is_one_line_and_exit_143(slow, command):
    # 13.13: before the fix SIGTERM's default ended the run without a word (exit -15)
    proc = _start(command, slow)
    _wait_until_mapped(proc, str(slow / "logits.npy"))  # the run has started
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    stopped = time.monotonic() - t0
    assert (proc.returncode, err, out) == (*TERMINATED_LINE[1:], "")
    # the same path as Ctrl-C: the exception unwinds the run (its finally blocks close
    # the file) within a block, well before the run would have ended
    assert stopped < 30, stopped


def test_a_run_left_alone_finishes(slow):
    # the files above really take the run the tests interrupt (and score)
    proc = _start("leepfast", slow)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.startswith("predictions ") and err == ""


def test_sigterm_ignored_by_the_parent_stays_ignored(slow):
    # a job whose SIGTERM its parent ignores (as nohup does with SIGHUP) keeps it ignored
    def ignore_term():
        _child_signals()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    proc = subprocess.Popen(
        [SCRIPT, *SCORE],
        cwd=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore_term,
    )
    _wait_until_mapped(proc, str(slow / "logits.npy"))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.startswith("predictions ")


# ---------------------------------------------------------------------------------------
# an address-space limit too small for NumPy


def _started_peak_bytes():
    """VmPeak of this interpreter once started: the least address space it needs."""
    code = (
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmPeak:'): print(int(line.split()[1]) * 1024)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(p.stdout)


def _limited(limit):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return preexec


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_address_space_limit_too_small_for_numpy_is_one_line(command, tmp_path):
    # 8 MiB over what the bare interpreter needs: enough to start Python, far too little
    # for NumPy's extension and its OpenBLAS (here ~13 MB against ~140 MB)
    limit = _started_peak_bytes() + (8 << 20)
    check = {}
    for what, code in (("python", "pass"), ("numpy", "import numpy")):
        check[what] = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            preexec_fn=_limited(limit),
        )
    assert check["python"].returncode == 0, check["python"].stderr
    assert check["numpy"].returncode == 1 and "ImportError" in check["numpy"].stderr
    assert check["numpy"].stderr.count("\n") > 20  # what the command printed before

    p = subprocess.run(
        [*COMMANDS[command], "config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        preexec_fn=_limited(limit),
    )
    assert p.returncode == 2
    assert p.stderr.startswith("leepfast: error: cannot start: importing numpy failed")
    assert p.stderr.endswith("; is the address-space limit (ulimit -v) too small?\n")
    assert "failed to map segment" in p.stderr  # the first cause, not NumPy's essay
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stdout == ""


# a finder that fails the import of one module as an exhausted memory would
_FAIL_IMPORT = """
import sys

class Fail:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise {error}
        return None

sys.meta_path.insert(0, Fail())
sys.argv = ["leepfast", "config"]
from leepfast.__main__ import main
sys.exit(main())
"""


@pytest.mark.parametrize(
    "module, error, expected",
    [
        (
            "numpy",
            "MemoryError()",
            "leepfast: error: cannot start: importing numpy failed: MemoryError: out of "
            "memory; is the address-space limit (ulimit -v) too small?\n",
        ),
        (
            "leepfast._rank",
            "MemoryError('mmap')",
            "leepfast: error: cannot start: importing leepfast._rank failed: "
            "MemoryError: mmap; is the address-space limit (ulimit -v) too small?\n",
        ),
        (
            "numpy._core._multiarray_umath",
            "ImportError('libfoo.so: cannot open shared object file', "
            "name='numpy._core._multiarray_umath')",
            "leepfast: error: cannot start: importing numpy failed (in "
            "numpy._core._multiarray_umath): libfoo.so: cannot open shared object file\n",
        ),
    ],
)
def test_a_failed_import_at_start_up_names_the_module(tmp_path, module, error, expected):
    code = _FAIL_IMPORT.format(module=module, error=error)
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert (p.returncode, p.stderr, p.stdout) == (2, expected, "")


# ---------------------------------------------------------------------------------------
# the lazy package


@pytest.fixture
def fresh(python_c):
    """The standard output of ``python -c code`` in a fresh interpreter (which must
    succeed)."""

    def run(code):
        p = python_c(code)
        assert p.returncode == 0, p.stderr
        return p.stdout

    return run


def test_import_leepfast_is_light(fresh):
    # numba, dask and torch were never imported by `import leepfast`; NumPy and the
    # package's modules now wait for their first use too, so that the command's signal
    # handling is in before anything heavy loads
    out = fresh(
        "import sys, leepfast\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'numba', 'dask', 'distributed', 'torch', 'tqdm', 'leepfast')))"
    )
    assert out.strip() == "['leepfast', 'leepfast._source_tree']"


def test_every_public_name_resolves_to_its_module_object():
    assert set(leepfast._PUBLIC) == set(leepfast.__all__)
    assert set(leepfast.__all__) <= set(dir(leepfast))
    for name, module in leepfast._PUBLIC.items():
        defining = importlib.import_module(f"leepfast{module}")
        assert getattr(leepfast, name) is getattr(defining, name), name


def test_public_names_in_a_fresh_interpreter(fresh):
    out = fresh(
        "import leepfast\n"
        "from leepfast import leep, InputError, open_predictions\n"
        "import numpy as np\n"
        "print(leep(np.array([[0.5, 0.5], [0.25, 0.75]]), [0, 1]))\n"
        "ns = {}\n"
        "exec('from leepfast import *', ns)\n"
        "print(sorted(set(leepfast.__all__) - set(ns)))\n"
        "print(leepfast.backends.__name__, leepfast._reference.__name__)\n"
        "print(issubclass(leepfast.ShapeError, leepfast.InputError))\n"
    )
    # hand-computed: both terms are log(8/15) (tests/test_surface.py)
    lines = out.splitlines()
    assert float(lines[0]) == pytest.approx(float(np.log(8 / 15)), rel=1e-15)
    assert lines[1:] == ["[]", "leepfast.backends leepfast._reference", "True"]


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match=r"^module 'leepfast' has no attribute 'lep'$"):
        leepfast.lep  # noqa: B018
    assert not hasattr(leepfast, "__wrapped__")
    with pytest.raises(ImportError, match="cannot import name 'lep' from 'leepfast'"):
        exec("from leepfast import lep", {})
