"""One resolved options object for a scoring run, validated once at the entry point.

The public functions (in memory, files, shards, dask, the stream scorer) take the same
keyword arguments; :meth:`Options.resolve` checks them all, once, with the messages of
the in-memory API, and the drivers pass the one object down instead of forwarding up to
ten arguments by hand.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, ParamSpec, TypeVar

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
    bind = _binder(parameters) if simple else None

    def decorate(fn: Callable[..., R]) -> Callable[P, R]:
        returns = inspect.signature(fn).return_annotation
        public = signature.replace(return_annotation=returns)

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            # the call bound by Python itself (a function of the template's
            # parameters, in C: a call costs microseconds less than a binding in
            # Python, tens less than inspect's); a call it refuses is bound by
            # inspect, for the message
            if bind is not None:
                try:
                    arguments = bind(*args, **kwargs)
                except TypeError:
                    pass
                else:
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


def _binder(parameters):
    """A function of ``parameters`` (positional-or-keyword, then keyword-only; names
    and defaults as given) returning its arguments as a dict, in their order, the
    defaults filled in: what ``inspect.Signature.bind`` and ``apply_defaults`` give,
    bound by Python's own call. Its body is a dict display, which cannot raise: a
    TypeError from it is one of binding. Made from source, as ``dataclasses`` makes
    ``__init__`` (the names are those of a ``def``; the defaults are passed as
    objects, never as source)."""
    text, defaults, star = [], {}, False
    for p in parameters:
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            text.append("*")
            star = True
        if p.default is p.empty:
            text.append(p.name)
        else:
            defaults[f"_default_{p.name}"] = p.default
            text.append(f"{p.name}=_default_{p.name}")
    body = ", ".join(f"{p.name!r}: {p.name}" for p in parameters)
    namespace = dict(defaults)
    exec(f"def bind({', '.join(text)}):\n    return {{{body}}}\n", namespace)
    return namespace["bind"]


class Options(NamedTuple):
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
            positive_int(n_target, "n_target"),
            check_flag(logits, "logits"),
            backends.resolve(backend),
            resolve_threads(n_threads),
            positive_int(block_size, "block_size"),
        )

    def with_n_target(self, n_target):
        return Options(n_target, *self[1:])  # what _replace gives, at a third of its cost
