"""One resolved options object for a scoring run, validated once at the entry point.

The public functions (in memory, files, shards, dask, the stream scorer) take the same
keyword arguments; :meth:`Options.resolve` checks them all, once, with the messages of
the in-memory API, and the drivers pass the one object down instead of forwarding up to
ten arguments by hand.
"""

from dataclasses import dataclass, replace

from . import backends
from ._checks import check_flag, positive_int
from ._config import resolve_threads


@dataclass(frozen=True)
class Options:
    """Validated run options.

    Attributes
    ----------
    n_target : int or None
        Y, or None to infer max(label) + 1.
    logits : bool
        The rows are logits (a max-subtracted softmax is taken per row in float64).
    backend : str
        A resolved backend name (never "auto").
    n_threads : int
        A resolved thread count (>= 1).
    block_size : int or None
        Rows per block, or None for the driver's default.
    """

    n_target: int | None = None
    logits: bool = False
    backend: str = "numpy"
    n_threads: int = 1
    block_size: int | None = None

    @classmethod
    def resolve(
        cls, *, n_target=None, logits=False, backend="auto", n_threads=None, block_size=None
    ):
        """Check every argument (in this order, which fixes which error comes first)."""
        return cls(
            n_target=positive_int(n_target, "n_target"),
            logits=check_flag(logits, "logits"),
            backend=backends.resolve(backend),
            n_threads=resolve_threads(n_threads),
            block_size=positive_int(block_size, "block_size"),
        )

    def with_n_target(self, n_target):
        return replace(self, n_target=n_target)
