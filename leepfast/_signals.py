"""The command line's signals and exit codes: SIGTERM handled like Ctrl-C.

Standard library only, imported by the program's entry (``leepfast/__main__.py``) before
anything heavy. A signal raises an exception in the main thread at the next Python
bytecode (between blocks of the kernels), so every ``finally`` runs: files are closed and
a spill folder is removed exactly as after Ctrl-C.
"""

# the C module itself: signal.py imports enum, milliseconds at start-up during which a
# Ctrl-C would still end in a traceback (the handlers and constants are the same)
try:
    import _signal as signal
except ImportError:  # not CPython
    import signal

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 130, 143
INTERRUPTED, TERMINATED = "leepfast: interrupted", "leepfast: terminated (SIGTERM)"


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so that whatever cleans up after Ctrl-C
    cleans up after it too; :func:`leepfast.cli.main` reports it as ``leepfast:
    terminated`` with exit code 143 (128 + SIGTERM)."""


#: the signal that ended the run, once one arrived (a signal that lands while an
#: extension module initialises can surface as some other exception, or none)
received = None


def _raise(signum, frame):
    global received
    received = signum
    # the first signal ends the run; a second one kills the process at once, silently,
    # as the signal's default does (no second exception raised inside the clean-up)
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is _raise:
            signal.signal(sig, signal.SIG_DFL)
    if signum == signal.SIGTERM:
        raise Terminated("SIGTERM")
    raise KeyboardInterrupt


def install():
    """SIGINT and SIGTERM raise KeyboardInterrupt and :class:`Terminated`, once.

    A signal the process inherited as ignored (a job started with ``nohup`` or in the
    background by a non-interactive shell) stays ignored. Main thread only."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _raise)


def restore_defaults():
    """Once the exit code is decided: a late signal ends the process as its default
    does, never with a traceback from the interpreter's shutdown."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is _raise:
            signal.signal(sig, signal.SIG_DFL)


def interruption(err):
    """The KeyboardInterrupt (or :class:`Terminated`) behind ``err``, if any: a signal
    that arrives while an extension module initialises can surface as the ImportError
    of the module that imported it (NumPy's: 'PyCapsule_Import could not import module
    "datetime"'), chained or not."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    if received == signal.SIGTERM:
        return Terminated("SIGTERM")
    if received == signal.SIGINT:
        return KeyboardInterrupt()
    return None
