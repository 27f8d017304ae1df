"""Where the C API lives: :func:`get_include`."""

import os

#: The files of the C API, all in the folder returned by :func:`get_include`.
C_HEADER = "leepfast.h"
C_SOURCES = ("leepfast.c", "leepfast_api.c")
C_FILES = (C_HEADER, *C_SOURCES, "leepfast_kernel.inc")

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def get_include():
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
        if all(os.path.isfile(os.path.join(folder, name)) for name in C_FILES):
            return folder
    raise FileNotFoundError(
        f"get_include: expected the leepfast C API files ({', '.join(C_FILES)}) in "
        f"{candidates[0]} (regular install) or {candidates[1]} (editable install), "
        "found neither; reinstall leepfast"
    )
