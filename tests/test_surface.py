"""Small parts of the public surface: Result.to_dict, reprs, the options object, the
pass states' merge."""

import inspect
import json
from fractions import Fraction

import numpy as np
import pytest

import leepfast
from leepfast._options import Options
from leepfast._state import Pass1State


def test_result_to_dict_has_the_scalars_only_and_is_json():
    theta = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])
    r = leepfast.score(theta, [0, 1, 1])
    d = r.to_dict()
    assert set(d) == {"leep", "nce", "n_samples", "n_source", "n_target", "backend"}
    assert d["leep"] == r.leep and d["n_samples"] == 3 and d["n_target"] == 2
    assert json.loads(json.dumps(d)) == d


def test_accumulator_repr_says_where_it_is():
    acc = leepfast.Accumulator(n_target=2, backend="numpy", n_threads=1)
    assert repr(acc) == (
        "Accumulator(phase='accumulate', n_samples=0, n_scored=0, n_source=None, "
        "n_target=2, logits=False, backend='numpy', n_threads=1)"
    )
    acc.accumulate(np.array([[0.5, 0.5], [0.25, 0.75]]), [0, 1]).finalize()
    assert repr(acc).startswith("Accumulator(phase='score', n_samples=2, n_scored=0, ")
    assert "nce=" in repr(acc)


def test_options_resolve_checks_each_argument_once():
    o = Options.resolve(n_target=np.int64(3), backend="numpy", n_threads=2)
    assert o == Options(n_target=3, logits=False, backend="numpy", n_threads=2)
    with pytest.raises(
        TypeError, match=r"^n_target: expected None or a positive integer, got bool$"
    ):
        Options.resolve(n_target=True)
    with pytest.raises(
        ValueError, match=r"^block_size: expected a positive integer, got 0$"
    ):
        Options.resolve(block_size=0)
    with pytest.raises(TypeError, match=r"^logits: expected True or False, got 'no'$"):
        Options.resolve(logits="no")


def test_spawned_pass_2_states_merge_to_the_whole():
    # LEEP of a hand-computed case: theta rows (1/2, 1/2), (1/4, 3/4), labels 0, 1:
    # S = [[1/2, 1/2], [1/4, 3/4]], C = [[2/3, 2/5], [1/3, 3/5]]
    # terms: log(1/2 * 2/3 + 1/2 * 2/5) = log(8/15), log(1/4 * 1/3 + 3/4 * 3/5) = log(8/15)
    theta = np.array([[0.5, 0.5], [0.25, 0.75]])
    y = np.array([0, 1])
    acc = leepfast.Accumulator(backend="numpy").accumulate(theta, y).finalize()
    a, b = acc.spawn(), acc.spawn()
    a.score(theta[:1], y[:1])
    b.score(theta[1:], y[1:], row_offset=1)
    assert acc.n_scored == 0  # the spawned states are their own
    acc.merge(a).merge(b)
    assert acc.result().leep == pytest.approx(
        float(np.log(float(Fraction(8, 15)))), rel=1e-15
    )


def test_pass_1_states_of_different_sizes_merge():
    one, two = Pass1State(2), Pass1State(1)
    one.reserve(3, 2)
    two.reserve(3, 4)
    one.joint[1, 1, 2] = 5.0
    two.joint[0, 3, 0] = 7.0
    one.n_samples, two.n_samples = 1, 1
    one.merge(two)
    assert one.n_target == 4 and one.n_samples == 2
    assert one.joint.sum(axis=0)[1, 2] == 5.0 and one.joint.sum(axis=0)[3, 0] == 7.0


def _public_callables():
    """(label, callable) of every public function and public method of every public
    class of leepfast (``__init__`` included)."""
    for name in leepfast.__all__:
        obj = getattr(leepfast, name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if callable(member) and (attr == "__init__" or not attr.startswith("_")):
                    yield f"{name}.{attr}", member
        elif callable(obj):
            yield name, obj


def test_the_public_api_is_annotated():
    # py.typed is shipped: every parameter and return of the public API is annotated
    unannotated = []
    for label, fn in _public_callables():
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        for p in sig.parameters.values():
            plain = p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            if plain and p.name not in ("self", "cls") and p.annotation is p.empty:
                unannotated.append(f"{label}({p.name})")
        if not label.endswith("__init__") and sig.return_annotation is sig.empty:
            unannotated.append(f"{label} -> ?")
    assert unannotated == []
    assert len(list(_public_callables())) >= 50  # the walk reaches the whole API
