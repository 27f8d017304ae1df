"""Argument validators shared by every public entry point (one place, one wording)."""

import numpy as np

from ._errors import InputError


def positive_int(value, name, *, allow_none=True, minimum=1):
    """``value`` as an int >= ``minimum`` (None passes through when ``allow_none``).

    A bool is not an integer here (``True`` would silently mean 1); a NumPy integer is.
    """
    if value is None and allow_none:
        return None
    if type(value) is int and value >= minimum:  # the common case, in two tests
        return value
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        either = f"None or {expected}" if allow_none else expected
        raise TypeError(f"{name}: expected {either}, got {type(value).__name__}")
    if value < minimum:
        raise InputError(f"{name}: expected {expected}, got {value}", name)
    return int(value)


def check_flag(value, name):
    """A boolean argument as a bool; anything else (``"False"``, 0, None) is refused,
    since ``bool("False")`` is True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def warn(message, category=UserWarning):
    """``warnings.warn`` attributed to the caller's first frame outside leepfast (the
    user's line), however deep in the package the warning is raised."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 2, sys._getframe(1)  # 2: warn()'s caller, frame 1 here
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package
    ):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
