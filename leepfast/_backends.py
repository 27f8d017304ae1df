"""Kept for imports written before the registry moved to :mod:`leepfast.backends`."""

from .backends import (  # noqa: F401
    BACKENDS,
    PROTOCOL,
    _importable,
    available_backends,
    module,
    resolve,
)
