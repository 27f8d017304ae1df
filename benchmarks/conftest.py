"""Shared fixtures and the ratio report of the benchmark suite.

Run: ``pytest benchmarks --benchmark-only`` (not part of the default test run).

Every group holds its baselines, measured in the same run on the same array: the read
floor (``floor``: one plain parallel sum over the array with the same threads) and,
where it runs, the common NumPy implementation (``naive``). After the run a table of
ratios is printed: reads = median / floor median, speedup = naive median / median.
"""

import functools

import pytest

from leepfast import _bench


@functools.lru_cache(maxsize=4)
def _data(n, n_source, n_target, dtype):
    theta, labels = _bench.make_predictions(n, n_source, n_target, dtype, seed=0)
    theta.setflags(write=False)
    return theta, labels


@pytest.fixture(scope="session")
def data():
    """data(n, Z, Y, dtype) -> (theta, labels), fixed seed, made once per session."""
    return _data


def _median(bench):
    stats = bench.stats
    return getattr(stats, "stats", stats).median


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        if bench.stats is None:
            continue
        groups.setdefault(bench.group, {})[bench.name] = (bench, _median(bench))
    tr = terminalreporter
    tr.write_sep("=", "leepfast: ratios against the baselines of each group")
    for group in sorted(groups, key=str):
        entries = groups[group]
        floor = next((m for name, (b, m) in entries.items() if "floor" in name), None)
        naive = next((m for name, (b, m) in entries.items() if "naive" in name), None)
        tr.write_line(f"[{group}]")
        for name, (bench, median) in sorted(entries.items(), key=lambda e: e[1][1]):
            extra = bench.extra_info or {}
            parts = [f"  {name:<40} {1e3 * median:10.2f} ms"]
            if floor:
                parts.append(f"{median / floor:7.2f} reads")
            if naive:
                parts.append(f"{naive / median:8.1f}x vs naive")
            if "rows" in extra:
                parts.append(f"{1e9 * median / extra['rows']:8.2f} ns/row")
            if "bytes" in extra:
                parts.append(f"{extra['bytes'] / median / 1e9:6.2f} GB/s")
            tr.write_line(" ".join(parts))
