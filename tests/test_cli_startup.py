"""The lazy package (issue 13, item 7): `import leepfast` loads nothing heavy, and every
public name resolves on first use."""

import importlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import leepfast

# ---------------------------------------------------------------------------------------
# the lazy package


def _fresh(code):
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_import_leepfast_is_light():
    # numba, dask and torch were never imported by `import leepfast`; NumPy and the
    # package's modules now wait for their first use too, so that the command's signal
    # handling is in before anything heavy loads
    out = _fresh(
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


def test_public_names_in_a_fresh_interpreter():
    out = _fresh(
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
