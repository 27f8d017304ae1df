"""``python -m leepfast`` and the ``leepfast`` command: the program's entry.

Signal handling goes in first, before anything heavy is imported; then NumPy and the
package load inside a guard, and :func:`leepfast.cli.main` runs. So from its first
instant the program ends in one line on stderr, never a traceback: Ctrl-C gives
``leepfast: interrupted`` (exit 130), SIGTERM ``leepfast: terminated (SIGTERM)`` (exit
143), an import that fails (a broken install, an address-space limit too small for NumPy)
``leepfast: error: cannot start: importing ... failed ...`` naming the module (exit 2).
"""

import sys

# not `from . import _signals`: that asks the lazy package's __getattr__ first, which
# imports importlib before the handlers are in
import leepfast._signals as _signals

# NumPy alone first, so that its failure is named as NumPy's; then what the commands use
# (the modules `import leepfast` loaded eagerly before it became lazy)
_STARTUP_IMPORTS = (
    "numpy",
    "leepfast.cli",
    "leepfast._api",
    "leepfast._files",
    "leepfast._rank",
    "leepfast._features",
    "leepfast._scorer",
    "leepfast._scores_more",
    "leepfast._config",
    "leepfast._demo",
    "leepfast._include",
)


def _innermost(err):
    """The first cause of an error (NumPy re-raises its extension's ImportError)."""
    seen = {id(err)}
    while True:
        nxt = err.__cause__ or err.__context__
        if not isinstance(nxt, ImportError | MemoryError) or id(nxt) in seen:
            return err
        seen.add(id(nxt))
        err = nxt


def _module_at_fault(err):
    """The module whose import raised ``err``: ImportError's name, else the innermost
    module body in the traceback."""
    if isinstance(err, ImportError) and err.name:
        return err.name
    name, tb = None, err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "<module>":
            name = tb.tb_frame.f_globals.get("__name__", name)
        tb = tb.tb_next
    return name


def startup_failure(err, step):
    """One line for an import of ``step`` that failed with ``err`` at start-up."""
    inner = _innermost(err)
    where = _module_at_fault(inner)
    where = f" (in {where})" if where and where != step else ""
    if isinstance(inner, MemoryError):
        detail = " ".join(str(inner).split()) or "out of memory"
        detail = f"MemoryError: {detail}"
    else:
        detail = " ".join((str(inner) or type(inner).__name__).split())
    memory = isinstance(inner, MemoryError) or any(
        text in detail for text in ("failed to map segment", "Cannot allocate memory")
    )
    hint = "; is the address-space limit (ulimit -v) too small?" if memory else ""
    return f"leepfast: error: cannot start: importing {step} failed{where}: {detail}{hint}"


def main(argv=None):
    """Run the command line as a program; return the exit code (0; 2 on errors and a
    failed start-up; 130 on Ctrl-C; 143 on SIGTERM)."""
    _signals.install()
    try:
        step = "leepfast"
        try:
            import importlib

            for step in _STARTUP_IMPORTS:
                importlib.import_module(step)
        except (ImportError, MemoryError, KeyboardInterrupt) as err:
            stop = _signals.interruption(err)
            if isinstance(stop, _signals.Terminated):
                print(_signals.TERMINATED, file=sys.stderr)
                return _signals.EXIT_TERMINATED
            if stop is not None:
                print(_signals.INTERRUPTED, file=sys.stderr)
                return _signals.EXIT_INTERRUPTED
            print(startup_failure(err, step), file=sys.stderr)
            return _signals.EXIT_ERROR
        return sys.modules["leepfast.cli"].main(argv)
    finally:
        _signals.restore_defaults()


if __name__ == "__main__":
    sys.exit(main())
