"""What ``leep()`` saves by keeping no pair counts: whole calls with and without them.

    python benchmarks/pairs.py [--rounds 11] [--threads 2] [--scale 1.0]

``leep()`` needs no NCE, so its pass 1 takes no argmax and keeps no (label, argmax)
counts. Here each case is timed three ways, round-robin in one process (medians of
--rounds): the read floor, ``leep()`` as it runs, and ``leep()`` with the pair counts
forced back on (as ``score()`` runs pass 1, and as ``leep()`` ran before), and the two
are checked to give the same value, bit for bit. ``--scale`` multiplies every n.
"""

import argparse
import contextlib
import sys
from functools import partial
from pathlib import Path

import leepfast
from leepfast import _api
from leepfast._bench import median_times, read_floor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contract import probabilities  # noqa: E402  (the contract's inputs)


@contextlib.contextmanager
def pair_counts():
    """``leep()``'s accumulator with pair counts, inside the block."""
    original = _api.Accumulator.__dict__["from_options"]  # the classmethod itself
    bound = _api.Accumulator.from_options

    def with_pairs(options, pairs=True):
        return bound(options, True)

    _api.Accumulator.from_options = staticmethod(with_pairs)
    try:
        yield
    finally:
        _api.Accumulator.from_options = original  # restored as it was, not bound


def call(theta, labels, y, threads, pairs):
    with pair_counts() if pairs else contextlib.nullcontext():
        return leepfast.leep(theta, labels, n_target=y, n_threads=threads)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0)
    args = p.parse_args(argv)
    t = args.threads
    cases = [
        (100_000, 1000, 100, "float32"),
        (100_000, 1000, 100, "float64"),
        (100_000, 1000, 100, "float16"),
        (1_000_000, 100, 10, "float32"),
        (4_000_000, 10, 10, "float32"),
    ]
    for n, z, y, dtype in cases:
        n = max(1, round(n * args.scale))
        theta, labels = probabilities(n, z, y, dtype)
        name = f"{dtype}, n={n}, Z={z}, Y={y}"
        assert call(theta, labels, y, t, False) == call(theta, labels, y, t, True)
        m = median_times(
            {
                "floor": partial(read_floor, theta, t),
                "with": partial(call, theta, labels, y, t, True),
                "without": partial(call, theta, labels, y, t, False),
            },
            args.rounds,
        )
        print(
            f"{name}: with pair counts {m['with'] / m['floor']:.2f} reads, without "
            f"{m['without'] / m['floor']:.2f} ({m['without'] / m['with']:.3f} of the "
            f"time)",
            flush=True,
        )


if __name__ == "__main__":
    main()
