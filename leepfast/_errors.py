"""The exceptions leepfast raises for bad input: one class per kind of defect.

Every class is a :class:`ValueError` (code that catches ``ValueError`` keeps working)
and carries ``argument``, the name of the argument its message names ("predictions",
"labels", "n_target", ...), so a caller, or the CLI, maps an error to what to fix by
kind and argument instead of matching message text. The message itself names the
argument, what was expected and what was found, with the first offending row.

Kernel statuses (``leepfast._status``) map to classes with :func:`for_status`.
"""

from . import _status

__all__ = [
    "InputError",
    "ShapeError",
    "LabelError",
    "NonFiniteError",
    "NegativeValueError",
    "RowSumError",
    "PassMismatchError",
    "StateSizeError",
    "FileFormatError",
    "FileChangedError",
]


class InputError(ValueError):
    """Bad input. ``argument`` names the argument at fault (None when none does)."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument

    def __reduce__(self):  # picklable with its argument (dask ships errors between hosts)
        return (type(self), (str(self), self.argument))


class ShapeError(InputError):
    """Wrong number of dimensions, an empty input or lengths that do not match."""


class LabelError(InputError):
    """A label that is negative, not below n_target, or not an integer."""


class NonFiniteError(InputError):
    """A NaN or an infinity in the predictions (or features)."""


class NegativeValueError(InputError):
    """A negative probability."""


class RowSumError(InputError):
    """A probability row whose sum is off 1 by more than the dtype's tolerance."""


class PassMismatchError(InputError):
    """Pass 2 did not see the rows of pass 1 (other rows, other counts, a changed
    file)."""


class StateSizeError(InputError):
    """The Y x Z (or Y x D) state would not fit in memory: usually one stray label."""


class FileFormatError(InputError):
    """A file that cannot be read as what it was given as; the message names the file."""


class FileChangedError(FileFormatError, PassMismatchError):
    """A file that changed (size, modification time or inode) while it was scored."""


_BY_STATUS = {
    _status.ERR_LABEL: LabelError,
    _status.ERR_NONFINITE: NonFiniteError,
    _status.ERR_NEGATIVE: NegativeValueError,
    _status.ERR_NOT_NORMALISED: RowSumError,
    _status.ERR_ZERO_PROB: PassMismatchError,
}


def for_status(status):
    """The exception class of a kernel status that reports bad input."""
    return _BY_STATUS[status]
