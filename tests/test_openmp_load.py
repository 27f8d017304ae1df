"""The compiled extension is loaded with libgomp's spin count lowered
(``leepfast._openmp``) unless the user set it, and the environment is left as it was."""

import os
import subprocess
import sys
import tempfile

import pytest

pytest.importorskip("leepfast._kernels")

PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
def gomp_loaded():
    with open("/proc/self/maps") as maps:
        return "libgomp" in maps.read()
before = gomp_loaded()
import numpy as np
import leepfast
leepfast.leep(np.full((4, 2), 0.5), [0, 1, 1, 0], backend="cython", n_threads=2)
from leepfast import _kernels
print(before, gomp_loaded() if _kernels.openmp_enabled() else None,
      os.environ.get("GOMP_SPINCOUNT"), libc.getenv(b"GOMP_SPINCOUNT"),
      os.environ.get("OMP_WAIT_POLICY"))
"""


def _probe(**env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),  # not the clone's root: its uncompiled folder
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_environment_is_restored_after_loading():
    before, after, spin, c_spin, policy = _probe()
    assert before == "False"  # nothing loaded libgomp first: our setting applied
    assert after in ("True", "None")
    assert spin == "None" and c_spin == "None" and policy == "None"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("env", [{"GOMP_SPINCOUNT": "123"}, {"OMP_WAIT_POLICY": "active"}])
def test_the_users_settings_are_kept(env):
    _, _, spin, c_spin, policy = _probe(**env)
    assert spin == env.get("GOMP_SPINCOUNT", "None")
    assert c_spin == (f"b'{env['GOMP_SPINCOUNT']}'" if "GOMP_SPINCOUNT" in env else "None")
    assert policy == env.get("OMP_WAIT_POLICY", "None")


def test_load_kernels_sets_the_count_only_while_loading(monkeypatch):
    from leepfast import _kernels, _openmp

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert _openmp.load_kernels() is _kernels
    assert "GOMP_SPINCOUNT" not in os.environ


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "env, want",
    [({}, "10000"), ({"GOMP_SPINCOUNT": "123"}, "123")],
    ids=["leepfast's", "the user's"],
)
def test_libgomp_itself_reads_the_count_and_config_names_it(env, want):
    # OMP_DISPLAY_ENV=VERBOSE makes libgomp print the settings it read when it loaded
    from leepfast import _kernels

    if not _kernels.openmp_enabled():
        pytest.skip("a serial build: no OpenMP runtime to configure")
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "leepfast", "config"],
        env={**base, **env, "OMP_DISPLAY_ENV": "VERBOSE"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),  # not the clone's root: its uncompiled folder
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OPENMP DISPLAY ENVIRONMENT BEGIN" in proc.stderr  # GNU libgomp's display
    assert f"GOMP_SPINCOUNT = '{want}'" in proc.stderr, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("OpenMP waits"))
    assert f"GOMP_SPINCOUNT={want} " in line
    assert line.endswith("(yours)" if env else "(leepfast's, at load)")


def test_the_callers_fall_back_where_the_extension_is_missing(monkeypatch):
    # every caller asks kernels_or_none(); without the extension each takes its NumPy
    # way or says so, and with it each uses it
    import numpy as np

    from leepfast import _bench, _config, _openmp

    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    half = a.astype(np.float16)
    with_ext = (_bench.read_floor(a, 2), _bench.current_level(), _config.config())
    assert with_ext[0] == pytest.approx(66 / 8)  # the compiled sum of the same values
    assert with_ext[1] in _config.SIMD_LEVELS
    assert with_ext[2]["cython_simd"] is not None
    monkeypatch.setattr(_openmp, "kernels_or_none", lambda: None)
    assert _bench.read_floor(a, 2) == 66 / 8
    assert _bench.read_floor(half, 2) == float(half.view(np.uint16).sum())  # the bits
    assert _bench.current_level() is None
    info = _config.config()
    assert info["cython_openmp"] is None and info["cython_simd"] is None
    assert "simd_in_use" not in info
    assert "no compiled extension" in _bench.format_table([], 3, 4, 2, 2)
