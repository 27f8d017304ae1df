"""The order of shards that a directory or a glob stands for.

Names are sorted with numbers read as numbers ("natural" order): each name is split into
runs of ASCII digits and runs of other characters, digit runs compare as integers, other
runs as strings, and equal keys (``part-2`` and ``part-02``) fall back to the plain
string, so the order is total and the same on every machine. ``part-2.npy`` comes before
``part-10.npy``; sorted as strings (``ls``, a shell glob, ``sorted(glob.glob(...))``) it
comes after.

Rows pair with labels by position, so when the labels are one file, a set of shard names
whose natural and string orders disagree is refused (:func:`check_label_order`): the
label file may follow either order, and the wrong one gives a wrong LEEP without a
sign. A list of paths is taken in the order given, never sorted, never refused.
"""

import os
import re

from .._errors import InputError

_RUNS = re.compile(r"([0-9]+)")


def natural_key(name):
    """The sort key of a name: text runs as str, ASCII digit runs as int, then the name."""
    parts = _RUNS.split(os.fspath(name))
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), os.fspath(name)


def natural_sorted(names):
    """``names`` sorted with numbers read as numbers (see the module docstring)."""
    return sorted(names, key=natural_key)


def disagreement(names):
    """Two of ``names`` in natural order that sort the other way round as strings, or
    None when both orders agree."""
    natural = natural_sorted(names)
    for a, b in zip(natural, sorted(names, key=os.fspath), strict=True):
        if a != b:  # a comes first read as numbers, b as strings: b sorts after a
            return a, b
    return None


def check_label_order(preds, labels):
    """Refuse ``preds`` when a directory or glob in it expanded to names whose natural
    and string orders disagree and ``labels`` come from one file (a path, or
    :class:`~leepfast.readers.labels.Labels` read from a file)."""
    conflicts = getattr(preds, "order_conflicts", None)
    if isinstance(labels, (str, os.PathLike)):
        path = os.fspath(labels)
    else:
        path = getattr(labels, "path", None)
    if not conflicts or path is None:
        return
    source, a, b = conflicts[0]
    na, nb = os.path.basename(a), os.path.basename(b)
    raise InputError(
        f"predictions: {source!r} stands for shards whose order depends on how "
        f"names are sorted: {na!r} comes before {nb!r} with numbers read as numbers "
        f"(leepfast's order), after it sorted as strings (ls, shell globs, sorted()); "
        f"the labels in {path} are one file and follow one of the two orders: pass "
        f"the shards as a list in the order of the labels (a list is read as given; "
        f"in a shell, e.g. part-{{1..12}}.npy), or give the numbers in the names one "
        f"width (part-02 ... part-10)",
        "predictions",
    )
