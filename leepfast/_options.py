"""One resolved options object for a scoring run, validated once at the entry point.

The public functions (in memory, files, shards, dask, the stream scorer) take the same
keyword arguments; :meth:`Options.resolve` checks them all, once, with the messages of
the in-memory API, and the drivers pass the one object down instead of forwarding up to
ten arguments by hand.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

from . import backends
from ._checks import check_flag, positive_int
from ._config import resolve_threads

P = ParamSpec("P")
R = TypeVar("R")


def takes_arguments_of(
    template: Callable[P, Any],
) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """Decorate a function of keyword arguments only, ``fn(**arguments)``, so that it
    takes ``template``'s parameters: a call is bound to them (a wrong call is the
    TypeError Python gives, naming the function), the defaults filled in, and ``fn``
    gets every argument by name. ``help()``, ``inspect.signature`` and type checkers
    see ``template``'s parameters and ``fn``'s return annotation. One template serves
    the public functions that take the same arguments, so that each is written once.
    """
    signature = inspect.signature(template)
    parameters = list(signature.parameters.values())
    kinds = {p.kind for p in parameters}
    # The fast binding below covers parameters that are positional-or-keyword then
    # keyword-only; any other template (and any call it does not cover) is bound by
    # inspect, which also gives every TypeError message.
    simple = kinds <= {
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    }
    positional = tuple(
        p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
    names = frozenset(p.name for p in parameters)
    required = frozenset(p.name for p in parameters if p.default is p.empty)
    # every name in the template's order, with its default (what apply_defaults gives)
    defaults = {p.name: p.default for p in parameters}

    def decorate(fn: Callable[..., R]) -> Callable[P, R]:
        returns = inspect.signature(fn).return_annotation
        public = signature.replace(return_annotation=returns)

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            # the common call (positional arguments, then keywords the template takes
            # and the positional ones left unset), bound without inspect: a call
            # costs microseconds, not tens of them
            if simple and len(args) <= len(positional) and names.issuperset(kwargs):
                given = dict(zip(positional, args, strict=False))
                if given.keys().isdisjoint(kwargs):
                    given.update(kwargs)
                    if required <= given.keys():
                        arguments = defaults.copy()
                        arguments.update(given)
                        return fn(**arguments)
            try:
                call = public.bind(*args, **kwargs)
            except TypeError as err:
                raise TypeError(f"{fn.__name__}() {err}") from None
            call.apply_defaults()
            return fn(**call.arguments)

        bound.__signature__ = public
        return bound

    return decorate


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
