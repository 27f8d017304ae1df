"""The ``leepfast`` command line (also ``python -m leepfast``).

Subcommands: ``score``, ``features``, ``rank``, ``config``, ``bench``, ``demo``.

Adding one: write ``_add_<name>(subparsers)``, which registers the parser (use
``_common_options`` for the shared ones) and sets ``func=_cmd_<name>``, and
``_cmd_<name>(args) -> int``, which returns the exit code; then list ``_add_<name>`` in
``_SUBCOMMANDS``. Errors are raised, not printed: :func:`main` turns every
``ValueError``, ``TypeError``, ``OSError``, ``ImportError`` and :class:`CLIError` into
one line ``leepfast: error: ...`` on stderr and exit code 2, Ctrl-C into exit 130 and
SIGTERM (:class:`leepfast._signals.Terminated`, raised by the handler that the program's
entry, ``leepfast/__main__.py``, installs before anything heavy loads) into exit 143.
"""

import argparse
import csv
import json
import math
import os
import sys
import time

from ._signals import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    INTERRUPTED,
    TERMINATED,
    Terminated,
    interruption,
)


class CLIError(Exception):
    """A usage or input error, reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: ``leepfast: error: ...``, exit 2."""

    def error(self, message):
        sub = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(EXIT_ERROR, f"leepfast: error: {sub}{message} (see {self.prog} --help)\n")


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _common_options(p):
    """Options shared by the subcommands that read prediction dumps."""
    p.add_argument(
        "--labels",
        required=True,
        metavar="LABELS",
        help="target labels: a 1-D integer .npy, text with one integer "
        "per line, or a column of a CSV/TSV/Parquet file (e.g. --labels y.npy, "
        "--labels meta.csv:label)",
    )
    p.add_argument(
        "--logits",
        action="store_true",
        help="the dumps hold logits: a softmax is taken per row",
    )
    p.add_argument(
        "--n-target",
        type=int,
        metavar="Y",
        help="number of target classes (default: largest label + 1)",
    )
    p.add_argument(
        "--dtype",
        metavar="D",
        help="raw (non-.npy) files: float16, float32 or float64, "
        "little-endian (e.g. --dtype float32)",
    )
    p.add_argument(
        "--n-source",
        type=int,
        metavar="Z",
        help="raw files: values per row, the number of source classes; "
        "rows come from the file size",
    )
    p.add_argument(
        "--key",
        metavar="NAME",
        help=".npz and .safetensors files holding several arrays: the one to read "
        "(e.g. --key probs)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "cython", "numba", "numpy"],
        help="kernel backend (default: auto, the fastest available)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads (default: all cores, or OMP_NUM_THREADS)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        metavar="ROWS",
        help="rows per block (default: about 32 MiB of input, 1 GiB for views of "
        "C-ordered files with a compiled backend)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (by default it is shown on stderr when stderr "
        "is a terminal and the run lasts over a second)",
    )


def _score_kwargs(args):
    return dict(
        n_target=args.n_target,
        logits=args.logits,
        dtype=args.dtype,
        n_source=args.n_source,
        key=args.key,
        backend=args.backend,
        n_threads=args.threads,
        block_size=args.block_size,
        progress=False if args.no_progress else None,
    )


def _gb(nbytes):
    return f"{nbytes / 1e9:.3g} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.3g} MB"


# ---------------------------------------------------------------------------------------
# leepfast score


def _add_score(subparsers):
    p = subparsers.add_parser(
        "score",
        formatter_class=_FORMATTER,
        help="LEEP and NCE of one model's prediction dump (one file or shards)",
        description="LEEP and NCE of one source model's predictions on a labelled "
        "target set. The PRED files are the shards of one dataset, in the "
        "order given; a directory or a quoted glob stands for its files "
        "sorted by name, numbers as numbers (-v lists the order). Each file is "
        "memory-mapped and streamed twice, never loaded whole.",
        epilog="""examples:
  leepfast score preds.npy --labels y.npy
  leepfast score 'shards/part-*.npy' --labels y.txt --json
  leepfast score logits.f16 --dtype float16 --n-source 1000 --logits --labels y.npy

output: LEEP, NCE, n (rows), Z (source classes), Y (target classes), time and
throughput (bytes of predictions read over both passes per second).""",
    )
    p.add_argument(
        "pred",
        nargs="+",
        metavar="PRED",
        help=".npy or raw files, directories or globs: the shards of one dataset",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="list the files in the order read"
    )
    _common_options(p)
    p.set_defaults(func=_cmd_score)


def _cmd_score(args):
    from . import _files, readers

    with readers.open_predictions(
        args.pred, dtype=args.dtype, n_source=args.n_source, key=args.key
    ) as preds:
        if args.verbose:
            for i, f in enumerate(preds.files):
                print(f"leepfast: file {i}: {f.path} ({f.n_samples} rows)", file=sys.stderr)
        t0 = time.perf_counter()
        r = _files.score_files(preds, args.labels, **_score_kwargs(args))
        seconds = time.perf_counter() - t0
        files, nbytes = [f.path for f in preds.files], preds.nbytes
        dtypes = "/".join(sorted({f.stored for f in preds.files}))
    gbps = 2 * nbytes / seconds / 1e9 if seconds > 0 else None
    if args.json:
        print(
            json.dumps(
                {
                    "leep": r.leep,
                    "nce": r.nce,
                    "n_samples": r.n_samples,
                    "n_source": r.n_source,
                    "n_target": r.n_target,
                    "backend": r.backend,
                    "files": files,
                    "bytes": nbytes,
                    "seconds": seconds,
                    "gb_per_s": gbps,
                }
            )
        )
        return EXIT_OK
    shown = files[0] if len(files) == 1 else f"{files[0]} ... {files[-1]}"
    rows = [
        (
            "predictions",
            f"{shown} ({len(files)} file{'s' * (len(files) > 1)}, {_gb(nbytes)}, {dtypes})",
        ),
        ("LEEP", f"{r.leep:.6f}"),
        ("NCE", f"{r.nce:.6f}"),
        ("n", f"{r.n_samples}"),
        ("Z (source)", f"{r.n_source}"),
        ("Y (target)", f"{r.n_target}"),
        ("backend", r.backend),
        ("time", f"{seconds:.3f} s"),
        ("throughput", f"{gbps:.2f} GB/s (2 passes over {_gb(nbytes)})"),
    ]
    for key, value in rows:
        print(f"{key:<12} {value}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# leepfast features

# the feature scores, as leepfast._rank.FEATURE_SCORES names them (a test keeps the two
# equal; the parser is built before NumPy loads, so it cannot import them); the first
# three take key= for files holding several arrays
FEATURE_SCORES = ("h_score", "regularized_h_score", "logme", "transrate", "gbc", "nleep")


def _add_features(subparsers):
    p = subparsers.add_parser(
        "features",
        formatter_class=_FORMATTER,
        help="H-score, LogME and the other feature scores of one model's feature dump",
        description="The feature-based transferability scores of one source model: its "
        "features (e.g. penultimate activations) on the labelled target samples. The "
        "FEATURES files are the shards of one dataset, in the order given, in any "
        "format score reads; a directory or a quoted glob stands for its files.",
        epilog="""examples:
  leepfast features feats.npy --labels y.npy
  leepfast features 'shards/part-*.npy' --labels y.txt --scores logme gbc --json

output: one line per score, then n, D and the time.""",
    )
    p.add_argument(
        "features",
        nargs="+",
        metavar="FEATURES",
        help="files, directories or globs: the shards of one model's features",
    )
    p.add_argument(
        "--labels",
        required=True,
        metavar="LABELS",
        help="target labels, as for score (a 1-D integer .npy, text, file.csv:column)",
    )
    p.add_argument(
        "--scores",
        nargs="+",
        default=["h_score", "regularized_h_score", "logme"],
        choices=FEATURE_SCORES,
        metavar="S",
        help=f"scores to compute, among {', '.join(FEATURE_SCORES)} (default: "
        "h_score regularized_h_score logme, the one-pass ones)",
    )
    p.add_argument("--key", metavar="NAME", help="the array of a file holding several")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    p.set_defaults(func=_cmd_features)


def _cmd_features(args):
    import leepfast

    features = args.features[0] if len(args.features) == 1 else args.features
    scores, t0 = {}, time.perf_counter()
    for name in dict.fromkeys(args.scores):  # each once, in the order given
        fn = getattr(leepfast, name)
        keyed = {"key": args.key} if name in FEATURE_SCORES[:3] else {}
        if args.key is not None and not keyed:
            raise CLIError(f"--key: {name} reads files holding one array; drop --key")
        scores[name] = float(fn(features, args.labels, **keyed))
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({**scores, "seconds": seconds}))
        return EXIT_OK
    for name, value in scores.items():
        print(f"{name:<20} {value:.6f}")
    print(f"{'time':<20} {seconds:.3f} s")
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# leepfast rank


def _add_rank(subparsers):
    p = subparsers.add_parser(
        "rank",
        formatter_class=_FORMATTER,
        help="rank several models' dumps by LEEP (with NCE and correlations with accuracy)",
        description="Score several source models on one labelled target set and print "
        "them sorted by LEEP, best first, with NCE beside it. Each MODEL is "
        "one model's dump: a file, a directory of shards, or a quoted glob "
        "of shards. A model's name is its file name without .npy, its "
        "directory name, or the glob as given.",
        epilog="""examples:
  leepfast rank --labels y.npy resnet50.npy vit_b16.npy convnext/
  leepfast rank --labels y.txt --accuracy acc.csv dumps/*.npy
  leepfast rank --labels y.npy --json 'dumps/*.npy'
  leepfast rank --labels y.npy --csv a.npy b_logits.npy --logits-for b_logits

--accuracy FILE: a CSV of model,accuracy lines (a header line is allowed), e.g.
  model,accuracy
  resnet50,0.812
  vit_b16,0.874
adds each model's measured accuracy and, for each score (LEEP, NCE), its correlation
with the accuracies: Kendall tau-b, weighted Kendall tau with hyperbolic weights
(as scipy.stats.weightedtau), Pearson r, and the model it picks (top-1 hit or miss,
and the regret: the accuracy lost by taking it instead of the most accurate model).
Every model's files, row count and accuracy line are checked before any is scored.
With progress on (stderr a terminal), one line per model names it.""",
    )
    p.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="one model's dump: a file, a directory or a glob of shards",
    )
    p.add_argument(
        "--accuracy",
        metavar="FILE",
        help="CSV of model,accuracy: adds accuracies, Kendall tau-b, weighted tau, "
        "Pearson r, top-1 hit and regret",
    )
    p.add_argument(
        "--logits-for",
        action="append",
        metavar="MODEL",
        help="this model's dump holds logits (repeat it for several; a name as "
        "shown in the table or the MODEL as given); --logits: every model",
    )
    p.add_argument(
        "--csv", action="store_true", help="print the rows as CSV instead of a table"
    )
    _common_options(p)
    p.set_defaults(func=_cmd_rank)


def _model_name(arg):
    base = os.path.basename(os.path.normpath(arg))
    if any(c in arg for c in "*?["):
        return arg
    return base[:-4] if base.lower().endswith(".npy") else base


def _read_accuracy(path):
    """{model: accuracy} from a CSV of model,accuracy lines (optional header)."""
    out = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            for i, row in enumerate(reader, start=1):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != 2:
                    raise CLIError(
                        f"accuracy (file {path}): line {i} has {len(row)} "
                        f"fields; expected model,accuracy"
                    )
                name, value = row[0].strip(), row[1].strip()
                try:
                    acc = float(value)
                except ValueError:
                    if i == 1:  # a header
                        continue
                    raise CLIError(
                        f"accuracy (file {path}): line {i}: {value!r} is not a number"
                    ) from None
                if not math.isfinite(acc):
                    raise CLIError(
                        f"accuracy (file {path}): line {i}: {value!r} is "
                        f"not a finite number"
                    )
                out[name] = acc
    except UnicodeDecodeError as err:
        raise CLIError(f"accuracy (file {path}): not UTF-8 text ({err.reason})") from None
    except csv.Error as err:  # a field over csv.field_size_limit(), a NUL byte, ...
        raise CLIError(
            f"accuracy (file {path}): line {reader.line_num}: {err}; expected "
            f"model,accuracy lines"
        ) from None
    if not out:
        raise CLIError(f"accuracy (file {path}): no model,accuracy lines")
    return out


def kendall_tau_b(x, y):
    """Kendall's tau-b (kept here for callers of the command line module; the
    implementation is :func:`leepfast._rank.kendall_tau_b`)."""
    from ._rank import kendall_tau_b as tau

    return tau(x, y)


def _cmd_rank(args):
    from ._rank import rank

    if args.json and args.csv:
        raise CLIError("--csv: not with --json (choose one output)")
    names = [_model_name(m) for m in args.models]
    if len(set(names)) < len(names):
        names = list(args.models)  # same base names: show the paths
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise CLIError(f"MODEL: {twice!r} is given twice")
    accuracy = None
    if args.accuracy:
        table = _read_accuracy(args.accuracy)
        accuracy = {}
        for name, model in zip(names, args.models, strict=True):
            acc = table.get(name, table.get(model))
            if acc is None:
                raise CLIError(
                    f"accuracy (file {args.accuracy}): no line for model "
                    f"{name!r}; it lists {', '.join(sorted(table))}"
                )
            accuracy[name] = acc
    logits = args.logits
    if args.logits_for:
        by_arg = dict(zip(args.models, names, strict=True))
        chosen = set()
        for given in args.logits_for:
            name = given if given in names else by_arg.get(given)
            if name is None:
                raise CLIError(
                    f"--logits-for: no model {given!r}; the models are {', '.join(names)}"
                )
            chosen.add(name)
        logits = {name: args.logits or name in chosen for name in names}
    ranking = rank(
        dict(zip(names, args.models, strict=True)),
        args.labels,
        accuracy=accuracy,
        n_target=args.n_target,
        logits=logits,
        dtype=args.dtype,
        n_source=args.n_source,
        key=args.key,
        backend=args.backend,
        n_threads=args.threads,
        block_size=args.block_size,
        progress=False if args.no_progress else None,
    )
    if args.json:
        print(ranking.to_json())
    elif args.csv:
        _print_csv(ranking)
    else:
        print(ranking.format())
    return EXIT_OK


def _print_csv(ranking):
    """The rows as CSV on stdout: rank, model, leep, nce[, accuracy], n_samples, ..."""
    columns = ["rank", "model", "leep", "nce"]
    if ranking.has_accuracy:
        columns.append("accuracy")
    columns += ["n_samples", "n_source", "n_target", "logits", "seconds"]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for i, row in enumerate(ranking.to_records(), start=1):
        row["rank"] = i
        writer.writerow(
            [repr(row[c]) if isinstance(row[c], float) else row[c] for c in columns]
        )


# ---------------------------------------------------------------------------------------
# leepfast config


def _add_config(subparsers):
    p = subparsers.add_parser(
        "config",
        formatter_class=_FORMATTER,
        help="print versions, backends, OpenMP and the default thread count",
        description="Print the leepfast and NumPy versions, the available backends, "
        "whether the compiled backend has OpenMP, and the default threads.",
        epilog="examples:\n  leepfast config\n"
        "  cc -I$(leepfast config --include) prog.c \\\n"
        "     $(leepfast config --include)/leepfast.c "
        "$(leepfast config --include)/leepfast_api.c -lm",
    )
    p.add_argument(
        "--include",
        action="store_true",
        help="print only the folder holding leepfast.h and the C sources of the C API "
        "(leepfast.get_include()), for -I in a C or C++ build",
    )
    p.set_defaults(func=_cmd_config)


def _cmd_config(args):
    from . import get_include, show_config

    if args.include:
        print(get_include())
        return EXIT_OK
    show_config()
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# leepfast bench


def _add_bench(subparsers):
    p = subparsers.add_parser(
        "bench",
        formatter_class=_FORMATTER,
        help="measure LEEP on this machine against the read floor and the goals",
        description="A quick benchmark on generated data: for each backend and dtype "
        "(and SIMD level of the compiled backend), the median time of leepfast.leep, "
        "its throughput (GB/s of input), 'reads' (its time divided by one parallel read "
        "of the same array: an exact two-pass LEEP cannot go below 2.0), its speed "
        "against the common NumPy implementation (per-class masked sums, "
        "predictions @ C.T, gather; a reference, no goal) and the goals of the "
        "performance contract that apply (DESIGN.md section 5: reads <= 2.2, or 3 when "
        "Z <= 100; float16 <= 0.6x the float32 time; numba <= 1.3x the compiled "
        "backend), all measured in this run. benchmarks/contract.py in the source "
        "tree measures every line of the contract.",
        epilog="examples:\n  leepfast bench\n  leepfast bench --levels all\n"
        "  leepfast bench --n 200000 --threads 1 --dtypes float32 --backends cython numba",
    )
    p.add_argument("--n", type=int, default=100_000, help="samples (default 100000)")
    p.add_argument(
        "--n-source",
        type=int,
        default=1000,
        metavar="Z",
        help="source classes (default 1000)",
    )
    p.add_argument(
        "--n-target",
        type=int,
        default=100,
        metavar="Y",
        help="target classes (default 100)",
    )
    p.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "float64", "float16"],
        choices=["float16", "float32", "float64", "bfloat16"],
        metavar="D",
        help="input dtypes: float16, float32, float64, bfloat16 "
        "(default: float32 float64 float16)",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        choices=["cython", "numba", "numpy"],
        metavar="B",
        help="backends (default: every available one)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads (default: all cores, OMP_NUM_THREADS respected)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=7,
        help="rounds of the read floor and the compiled backends, timed "
        "round-robin; the median is shown (default 7)",
    )
    p.add_argument(
        "--levels",
        metavar="L",
        help="SIMD levels of the compiled backend, comma-separated (e.g. avx2,sse2), or "
        "'all' for every level of this CPU (default: the level in use; LEEPFAST_SIMD "
        "caps it)",
    )
    p.add_argument(
        "--no-naive", action="store_true", help="skip the (slow) naive NumPy baseline"
    )
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args):
    from . import _bench
    from ._config import resolve_threads

    for name in ("n", "n_source", "n_target", "repeat"):
        if getattr(args, name) < 1:
            raise CLIError(
                f"--{name.replace('_', '-')}: expected a positive integer, "
                f"got {getattr(args, name)}"
            )
    levels = None
    if args.levels is not None:
        known = _bench.cpu_levels()
        levels = (
            known
            if args.levels.strip() == "all"
            else [v.strip().lower() for v in args.levels.split(",") if v.strip()]
        )
        bad = [v for v in levels if v not in known]
        if bad or not levels:
            raise CLIError(
                f"--levels: expected 'all' or levels of this CPU among "
                f"{', '.join(known) or '(none: no compiled backend)'}, got {args.levels!r}"
            )
    threads = resolve_threads(args.threads)
    rows = _bench.run(
        args.n,
        args.n_source,
        args.n_target,
        dtypes=args.dtypes,
        backends=args.backends,
        n_threads=threads,
        repeat=args.repeat,
        naive=not args.no_naive,
        levels=levels,
    )
    print(_bench.format_table(rows, args.n, args.n_source, args.n_target, threads))
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# leepfast demo


def _add_demo(subparsers):
    p = subparsers.add_parser(
        "demo",
        formatter_class=_FORMATTER,
        help="rank 16 bundled real source models by LEEP against measured accuracy",
        description="Score the 16 source models bundled with leepfast (one-hidden-layer "
        "MLPs trained on MNIST tasks; their softmax on 200 images of a 10-class "
        "target task from sklearn's digits) and print them sorted by LEEP, with NCE "
        "and the accuracy measured after training a new head on each model's frozen "
        "features, then the Kendall tau-b between each score and the accuracy. "
        "Offline, in seconds, with no extra installed. The data come from the "
        "experiment in examples/experiment/.",
        epilog="examples:\n  leepfast demo\n  leepfast demo --json",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "cython", "numba", "numpy"],
        help="kernel backend (default: auto, the fastest available)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args):
    from ._demo import demo

    result = demo(backend=args.backend)
    if args.json:
        print(result.ranking.to_json())
        return EXIT_OK
    print(result.format())
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# Registration and the entry point

_SUBCOMMANDS = [_add_score, _add_features, _add_rank, _add_config, _add_bench, _add_demo]


def build_parser():
    """The argument parser with every subcommand registered."""
    from . import __version__

    parser = _Parser(
        prog="leepfast",
        formatter_class=_FORMATTER,
        description="Exact LEEP and NCE transferability scores of prediction dumps "
        "(.npy or raw binary, one file or shards), streamed from disk.",
        epilog="""examples:
  leepfast score preds.npy --labels y.npy
  leepfast rank --labels y.npy --accuracy acc.csv a.npy b.npy c/
  leepfast config
  leepfast demo

Run 'leepfast COMMAND --help' for each command's options. Exit codes: 0 success, 2 bad
input or usage (one line on stderr), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).""",
    )
    parser.add_argument("--version", action="version", version=f"leepfast {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


# the library's argument names, as the options that set them are spelled
_OPTION_NAMES = {
    "n_threads": "--threads",
    "block_size": "--block-size",
    "n_target": "--n-target",
    "n_source": "--n-source",
    "dtype": "--dtype",
    "key": "--key",
    "logits=True": "--logits",
}


def _message(err):
    """One line for the error, in the command line's terms."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = " ".join((str(err) or type(err).__name__).split())
    name, sep, rest = text.partition(": ")
    if sep and name in _OPTION_NAMES:
        text = f"{_OPTION_NAMES[name]}: {rest}"
    return text.replace("(pass logits=True if", "(pass --logits if")


def main(argv=None):
    """Run the command line; return the exit code (0, 2 on errors, 130 on Ctrl-C, 143 on
    SIGTERM when the program's entry installed its handler)."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except Terminated:
        print(TERMINATED, file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `leepfast demo | head`): not an error of ours;
        # point stdout at devnull so the interpreter's final flush stays quiet too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CLIError, ValueError, TypeError, OSError, ImportError, MemoryError) as err:
        stop = interruption(err)  # Ctrl-C while an extension module initialised
        if isinstance(stop, Terminated):
            print(TERMINATED, file=sys.stderr)
            return EXIT_TERMINATED
        if stop is not None:
            print(INTERRUPTED, file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"leepfast: error: {_message(err)}", file=sys.stderr)
        return EXIT_ERROR
