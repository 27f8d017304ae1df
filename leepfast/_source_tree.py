"""Imported first by the package: Python started in a clone's root must not silently
run the uncompiled folder."""

import os
from importlib.machinery import EXTENSION_SUFFIXES


def refuse_the_source_folder():
    """Python started in a clone's root imports the uncompiled ``leepfast/`` folder, which
    would silently run the slow NumPy backend: say so, as NumPy does in its source tree.
    An in-place build (``pip install -e .``) has the compiled module here and passes."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    in_a_clone = os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(
        os.path.join(root, "src_cython")
    )
    built = any(
        os.path.exists(os.path.join(here, "_kernels" + suffix))
        for suffix in EXTENSION_SUFFIXES
    )
    if in_a_clone and not built and not os.environ.get("LEEPFAST_ALLOW_SOURCE_TREE"):
        raise ImportError(
            f"leepfast: this is the source folder {here}, whose compiled backend is not "
            f"built; you are probably running Python from the clone's root. Run it from "
            f"another folder to use the installed leepfast (pip install . from the root "
            f"installs it), or build in place with pip install -e . "
            f"(LEEPFAST_ALLOW_SOURCE_TREE=1 imports the folder anyway, NumPy backend only)"
        )


refuse_the_source_folder()
