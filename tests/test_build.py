"""The artefacts users get (issue 13, item 19): the sdist and the wheel built from it,
with no deprecation or packaging warning from setuptools (the TOML-table license stops
building on 2027-02-18), the SPDX license in the metadata and the demo data inside.

One slow test (it compiles the extension, ~30 s here): it needs the source tree and the
`build` frontend (the lint extra installs it)."""

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_A_SOURCE_TREE = (ROOT / "pyproject.toml").is_file() and (ROOT / "src_cython").is_dir()


@pytest.mark.skipif(not IN_A_SOURCE_TREE, reason="builds the project from its source tree")
def test_sdist_and_wheel_build_without_warnings_and_ship_the_demo_data(tmp_path):
    pytest.importorskip("build", reason="the build frontend: pip install '.[test]'")
    # a copy: the build writes build/ and *.egg-info next to the sources
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.o", ".*cache*"
        ),
    )
    out = tmp_path / "dist"
    # the default: the sdist, then the wheel from that sdist (so the sdist is complete)
    p = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-5000:]
    assert "`project.license` as a TOML table is deprecated" not in log
    assert "is absent from the `packages` configuration" not in log
    # no Python warning of any kind from the backend (setuptools' come as
    # SetuptoolsDeprecationWarning, SetuptoolsWarning, BuildBackendWarning, ...)
    assert re.findall(r"\b\w+Warning\b: .*", log) == []
    # nor from the compilers: Cython's and the C compiler's (GCC, Clang: "x.c:1:2:
    # warning: ..."; a maybe-uninitialized pointer in the generated C was one)
    assert re.findall(r"\S+\.(?:c|h|inc|pyx|pxd|pxi):\d+:(?:\d+:)? warning: .*", log) == []

    demo = sorted(f.name for f in (ROOT / "leepfast" / "data" / "demo").iterdir())
    assert len(demo) == 18  # 16 models, their labels and their accuracies
    python_files = sorted(
        str(f.relative_to(ROOT)) for f in (ROOT / "leepfast").rglob("*.py")
    )

    (wheel,) = out.glob("leepfast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names if "/data/demo/" in n) == demo
    assert [f for f in python_files if f not in names] == []  # no package lost
    metadata = zipfile.ZipFile(wheel).read("leepfast-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: BSD-3-Clause\n" in metadata
    assert "Classifier: License ::" not in metadata  # would conflict with the expression

    (sdist,) = out.glob("leepfast-*.tar.gz")
    with tarfile.open(sdist) as tar:
        in_sdist = tar.getnames()
    assert (
        sorted(n.rsplit("/", 1)[1] for n in in_sdist if "/leepfast/data/demo/" in n) == demo
    )
