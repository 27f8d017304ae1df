"""Where the C API lives: :func:`get_include`."""

import os

#: The header of the C API, in the folder returned by :func:`get_include`.
C_HEADER = "leepfast.h"
#: The one list of the C core's files (src_cython/manifest.txt, copied with them).
MANIFEST = "manifest.txt"

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _manifest(folder):
    """(sources, files) listed by ``folder``'s manifest.txt, or None without one."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    sources, files = [], []
    for line in lines:
        kind, _, name = line.partition("#")[0].strip().partition(" ")
        if kind:
            files.append(name.strip())
            if kind == "source":
                sources.append(name.strip())
    return tuple(sources), tuple(files)


def _listed():
    for folder in (
        os.path.join(_PACKAGE, "include"),
        os.path.join(os.path.dirname(_PACKAGE), "src_cython"),
    ):
        listed = _manifest(folder)
        if listed:
            return listed
    return (), ()


#: The C sources to compile and every file of the C API, from the manifest.
C_SOURCES, C_FILES = _listed()


def c_sources():
    """The C files to compile with ``leepfast.h`` (from the manifest of get_include())."""
    return _manifest(get_include())[0]


def get_include() -> str:
    """The folder holding ``leepfast.h`` and the C sources of the C API.

    Compile ``leepfast.c`` and ``leepfast_api.c`` from this folder into your C or C++
    program with ``-I<folder>`` and link with ``-lm``; ``leepfast.h`` documents every
    function. Cython users add it to ``include_dirs`` and ``cimport leepfast.libleepfast``.

    Returns
    -------
    str
        An absolute path: ``<site-packages>/leepfast/include`` in a regular install (the
        files are copied there when the wheel is built), or the source tree's
        ``src_cython`` folder in an editable install, where that copy does not exist.

    Raises
    ------
    FileNotFoundError
        If neither folder holds ``leepfast.h`` (a broken install).
    """
    candidates = (
        os.path.join(_PACKAGE, "include"),
        os.path.join(os.path.dirname(_PACKAGE), "src_cython"),
    )
    for folder in candidates:
        listed = _manifest(folder)
        if listed and all(os.path.isfile(os.path.join(folder, name)) for name in listed[1]):
            return folder
    raise FileNotFoundError(
        f"get_include: expected the leepfast C API files ({', '.join(C_FILES)}) in "
        f"{candidates[0]} (regular install) or {candidates[1]} (editable install), "
        "found neither; reinstall leepfast"
    )
