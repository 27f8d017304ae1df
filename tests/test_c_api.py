"""The C API: leepfast.h and the C sources in leepfast.get_include(), the example program
in examples/c/, and the Cython declarations in leepfast/libleepfast.pxd.

Everything is compiled once per session with the system compiler (gcc as C99, g++ as
C++, gcc with AddressSanitizer and UndefinedBehaviorSanitizer), linking only the shipped C
sources; the programs then run with an empty environment (no Python anywhere) on files
written to a temporary folder, and their output is compared with leepfast.leep /
leepfast.nce on the same files.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import leepfast
from leepfast import _status
from leepfast._include import C_FILES, C_SOURCES
from leepfast._tensors import bfloat16_of, is_bfloat16, widen_bfloat16

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "c"
CHECK_SOURCE = Path(__file__).resolve().parent / "c_api_check.c"
WARNINGS = ["-Wall", "-Wextra", "-pedantic", "-Werror"]
# The shipped sources are held to WARNINGS by test_shipped_sources_compile_cleanly; the
# shared builds only warn, so that a warning fails that one test, not all of them.
SOURCE_FLAGS = ["-Wall", "-Wextra"]
N_SAMPLES, N_SOURCE, N_TARGET = 997, 13, 6  # label 5 never occurs: an absent class
RTOL = 1e-12


def run(cmd, **kwargs):
    """Run a command; on failure, fail the test with its output."""
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited with {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    return proc


def run_clean(cmd):
    """Run a compiled program with an empty environment: no Python, no PATH."""
    return run(cmd, env={})


def include_dir():
    return Path(leepfast.get_include())


def c_sources():
    return [include_dir() / name for name in C_SOURCES]


# ---------------------------------------------------------------------------------------
# Data files


def _probabilities(rng, n, z):
    theta = rng.random((n, z)) ** 3
    theta[:, 4] = 0.0  # a source class without any mass: exact, no epsilon
    return theta / theta.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Files of probabilities (f64, f32, f16 and bf16 bits), logits and int64 labels."""
    folder = tmp_path_factory.mktemp("c_api_data")
    rng = np.random.default_rng(20260527)
    labels = rng.integers(0, N_TARGET - 1, size=N_SAMPLES).astype(np.int64)
    arrays = {
        "f64": _probabilities(rng, N_SAMPLES, N_SOURCE),
        "logits_f64": rng.normal(scale=3.0, size=(N_SAMPLES, N_SOURCE)),
    }
    arrays["f32"] = arrays["f64"].astype(np.float32)
    arrays["f16"] = arrays["f64"].astype(np.float16)
    arrays["logits_f32"] = arrays["logits_f64"].astype(np.float32)
    arrays["logits_f16"] = arrays["logits_f64"].astype(np.float16)
    arrays["bf16"] = bfloat16_of(arrays["f64"])  # its bits, rounded to nearest
    arrays["logits_bf16"] = bfloat16_of(arrays["logits_f64"])
    paths = {}
    for name, arr in arrays.items():
        paths[name] = folder / f"{name}.bin"
        arr.tofile(paths[name])  # float16 goes out as its IEEE binary16 bits
    paths["labels"] = folder / "labels.i64"
    labels.tofile(paths["labels"])
    paths["labels_txt"] = folder / "labels.txt"
    paths["labels_txt"].write_text("".join(f"{v}\n" for v in labels))
    return {"folder": folder, "arrays": arrays, "labels": labels, "paths": paths}


# ---------------------------------------------------------------------------------------
# One build per session


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """The test driver built three ways, and the example built with its Makefile."""
    out = tmp_path_factory.mktemp("c_api_build")
    inc = include_dir()
    sources = c_sources()
    programs = {}

    # C99
    objects = []
    for src in sources:
        obj = out / (src.stem + ".o")
        run(["gcc", "-std=c99", "-O2", *SOURCE_FLAGS, f"-I{inc}", "-c", src, "-o", obj])
        objects.append(obj)
    # the driver as C99, then as C++ (the shipped sources compiled as C, above)
    for name, compiler, language in (
        ("c99", "gcc", ["-std=c99"]),
        ("cxx", "g++", ["-std=c++11", "-x", "c++"]),
    ):
        check_obj = out / f"check_{name}.o"
        flags = [*language, "-O2", *WARNINGS, f"-I{inc}"]
        run([compiler, *flags, "-c", CHECK_SOURCE, "-o", check_obj])
        programs[name] = out / f"check_{name}"
        run([compiler, "-o", programs[name], check_obj, *objects, "-lm"])

    # AddressSanitizer + UndefinedBehaviorSanitizer: any report aborts the program
    programs["asan"] = out / "check_asan"
    run(
        [
            "gcc",
            "-std=c99",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            *SOURCE_FLAGS,
            f"-I{inc}",
            "-o",
            programs["asan"],
            CHECK_SOURCE,
            *sources,
            "-lm",
        ]
    )

    # the SIMD levels below the one this CPU picks at run time: AVX2, SSE2 only, and the
    # portable scalar C of non-x86 machines; all must give the same values
    for name, flag in (
        ("avx2", "-DLEEPFAST_NO_AVX512"),
        ("sse2", "-DLEEPFAST_NO_AVX2"),
        ("scalar", "-DLEEPFAST_NO_SIMD"),
    ):
        programs[name] = out / f"check_{name}"
        run(
            [
                "gcc",
                "-std=c99",
                "-O2",
                flag,
                *SOURCE_FLAGS,
                f"-I{inc}",
                "-o",
                programs[name],
                CHECK_SOURCE,
                *sources,
                "-lm",
            ]
        )

    # the example, with its own Makefile, built outside the source tree
    example_dir = out / "example"
    example_dir.mkdir()
    run(
        [
            "make",
            "-s",
            "-f",
            EXAMPLE / "Makefile",
            f"PYTHON={sys.executable}",
            "CC=gcc",
            "CFLAGS=-O2 -std=c99 " + " ".join(SOURCE_FLAGS),
        ],
        cwd=example_dir,
    )
    programs["example"] = example_dir / "leep_score"
    return programs


def call(program, func, pred, labels, n=N_SAMPLES, z=N_SOURCE, y=N_TARGET, null=None):
    """Run `program call ...`: ("ok", value) or ("status", code, untouched, message)."""
    cmd = [program, "call", func, pred, labels, n, z, y] + ([null] if null else [])
    words = run_clean(cmd).stdout.split(maxsplit=3)
    if words[0] == "ok":
        return "ok", float(words[1])
    assert words[0] == "status", words
    return "status", int(words[1]), words[2] == "untouched", words[3].strip()


def expected(data, name, metric):
    """leepfast.leep / leepfast.nce of the array written to data file ``name``."""
    arr = data["arrays"][name]
    logits = name.startswith("logits")
    f = leepfast.leep if metric == "leep" else leepfast.nce
    return f(arr, data["labels"], n_target=N_TARGET, logits=logits)


# ---------------------------------------------------------------------------------------
# Header, version, get_include


def test_get_include_holds_the_c_api():
    folder = include_dir()
    assert folder.is_absolute()
    for name in C_FILES:
        assert (folder / name).is_file(), name
    package = Path(leepfast.__file__).resolve().parent
    if (package / "include").is_dir():  # a regular install: the packaged copy
        assert folder == package / "include"
    else:  # an editable install: the source tree itself
        assert folder == package.parent / "src_cython"


def test_get_include_packaged_copy_wins(tmp_path):
    """A copy in <package>/include (what the wheel ships) is preferred to src_cython."""
    package = tmp_path / "leepfast"
    (package / "include").mkdir(parents=True)
    # the installed module (the tests may run outside the source tree)
    shutil.copy(Path(leepfast.__file__).parent / "_include.py", package / "_include.py")
    for name in C_FILES:
        shutil.copy(include_dir() / name, package / "include" / name)
    spec = importlib.util.spec_from_file_location("_include_copy", package / "_include.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert Path(module.get_include()) == package / "include"
    (package / "include" / "leepfast_kernel.inc").unlink()
    with pytest.raises(FileNotFoundError, match="leepfast_kernel.inc"):
        module.get_include()


@pytest.mark.parametrize(
    "std", ["gcc -std=c99", "gcc -std=c11", "g++ -std=c++11", "g++ -std=c++17"]
)
@pytest.mark.parametrize("openmp", [False, True])
def test_header_compiles_cleanly(tmp_path, std, openmp):
    compiler, flag = std.split()
    src = tmp_path / ("only_header.cpp" if compiler == "g++" else "only_header.c")
    src.write_text(
        '#include "leepfast.h"\n#include "leepfast.h" /* include guard */\n'
        "int main(void) { double x = 0.0; int64_t y = 0; float p = 1.0f;\n"
        "  return leepfast_leep_f32(&p, &y, 1, 1, 1, &x) == LEEPFAST_OK ? 0 : 1; }\n"
    )
    extra = ["-fopenmp"] if openmp else []
    run(
        [
            compiler,
            flag,
            *WARNINGS,
            *extra,
            f"-I{include_dir()}",
            "-c",
            src,
            "-o",
            tmp_path / "a.o",
        ]
    )
    # the API's own source compiles as C and as C++ under the same flags
    lang = ["-x", "c++"] if compiler == "g++" else []
    run(
        [
            compiler,
            flag,
            *WARNINGS,
            *extra,
            *lang,
            f"-I{include_dir()}",
            "-c",
            include_dir() / "leepfast_api.c",
            "-o",
            tmp_path / "b.o",
        ]
    )


@pytest.mark.parametrize("openmp", [False, True])
def test_shipped_sources_compile_cleanly(tmp_path, openmp):
    """Every shipped source and the example, as C99 under -Wall -Wextra -pedantic
    -Werror; leepfast_api.c also as C++."""
    extra = ["-fopenmp"] if openmp else []
    for src in [*c_sources(), EXAMPLE / "leep_score.c"]:
        run(
            [
                "gcc",
                "-std=c99",
                *WARNINGS,
                *extra,
                f"-I{include_dir()}",
                "-c",
                src,
                "-o",
                tmp_path / "x.o",
            ]
        )


def test_cli_prints_the_include_folder(tmp_path):
    # run outside the source tree: from the repo root, `python -m` would import it
    proc = run([sys.executable, "-m", "leepfast", "config", "--include"], cwd=tmp_path)
    assert proc.stdout == f"{leepfast.get_include()}\n"


def test_version_macros_match_the_package(builds):
    out = run_clean([builds["c99"], "version"]).stdout
    major, minor, patch, number, string = out.split()
    assert f"{major}.{minor}.{patch}" == leepfast.__version__
    assert string == leepfast.__version__
    assert int(number) == int(major) * 10000 + int(minor) * 100 + int(patch)


def test_status_codes_match_python():
    header = (include_dir() / "leepfast.h").read_text()
    for name in (
        "OK",
        "ERR_NULL",
        "ERR_SIZE",
        "ERR_LABEL",
        "ERR_NONFINITE",
        "ERR_NEGATIVE",
        "ERR_NOT_NORMALISED",
        "ERR_ZERO_PROB",
        "ERR_NOMEM",
    ):
        found = re.search(rf"LEEPFAST_{name} = (\d+)", header)
        assert found is not None, name
        assert int(found.group(1)) == getattr(_status, name)


def test_strerror_names_every_status(builds):
    lines = run_clean([builds["c99"], "strerror"]).stdout.splitlines()
    messages = dict(line.split("\t") for line in lines)
    assert messages["0"] == "success"
    assert "NULL" in messages[str(_status.ERR_NULL)]
    assert "zero or negative" in messages[str(_status.ERR_SIZE)]
    assert "label" in messages[str(_status.ERR_LABEL)]
    assert "NaN" in messages[str(_status.ERR_NONFINITE)]
    assert "negative" in messages[str(_status.ERR_NEGATIVE)]
    assert "sum to 1" in messages[str(_status.ERR_NOT_NORMALISED)]
    assert "no mass" in messages[str(_status.ERR_ZERO_PROB)]
    assert "memory" in messages[str(_status.ERR_NOMEM)]
    assert messages["-1"] == messages["9"] == "unknown leepfast status"
    assert len({messages[str(code)] for code in range(9)}) == 9


# ---------------------------------------------------------------------------------------
# Values: the C API against leepfast.leep / leepfast.nce on the same files


SIMD_BUILDS = ["c99", "avx2", "sse2", "scalar"]  # the default build picks at run time


def test_each_build_reports_its_instruction_set(builds):
    from leepfast import _kernels

    picked = {
        name: run_clean([builds[name], "simd"]).stdout.strip() for name in SIMD_BUILDS
    }
    assert picked["c99"] == _kernels.simd()  # the same sources, the same CPU
    assert picked["c99"] in ("avx512", "avx2", "sse2")  # this suite runs on x86-64
    assert picked["avx2"] in ("avx2", "sse2") and picked["avx2"] != "avx512"
    assert picked["sse2"] == "sse2"
    assert picked["scalar"] == "scalar"


@pytest.fixture(scope="module")
def width_files(tmp_path_factory):
    """Probability files (f64, f32, f16, bf16) for source counts around every vector width,
    with zeros, a massless column and argmax ties, to run each SIMD build's main loops
    and tails against leepfast.leep (which this CPU runs with its widest set)."""
    folder = tmp_path_factory.mktemp("c_api_widths")
    rng = np.random.default_rng(7)
    files = []
    for z in (1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100):
        n = 61
        theta = rng.random((n, z)) ** 3
        theta[rng.random((n, z)) < 0.3] = 0.0
        theta[:, z // 2] = 0.0
        theta[np.arange(n), rng.integers(0, z, n)] += 0.5
        if z > 2:
            theta[::5, [0, z - 1]] = 4.0  # ties between the first and last lane
        theta /= theta.sum(axis=1, keepdims=True)
        labels = rng.integers(0, 4, n).astype(np.int64)
        labels.tofile(folder / f"labels_{z}.i64")
        for name in ("f64", "f32", "f16", "bf16"):
            bits = int(name[-2:])
            arr = bfloat16_of(theta) if name == "bf16" else theta.astype(f"f{bits // 8}")
            arr.tofile(folder / f"{name}_{z}.bin")
            files.append((name, z, n, arr, labels, folder))
    return files


@pytest.mark.parametrize("program", SIMD_BUILDS)
def test_every_simd_build_matches_python_around_every_width(builds, width_files, program):
    for name, z, n, arr, labels, folder in width_files:
        for metric, f in (("leep", leepfast.leep), ("nce", leepfast.nce)):
            got = call(
                builds[program],
                f"{metric}_{name}",
                folder / f"{name}_{z}.bin",
                folder / f"labels_{z}.i64",
                n=n,
                z=z,
                y=4,
            )
            assert got[0] == "ok", (name, z, metric, got)
            want = f(arr, labels, n_target=4)
            assert got[1] == pytest.approx(want, rel=RTOL, abs=RTOL), (name, z, metric)


@pytest.mark.parametrize("program", ["c99", "cxx", "avx2", "sse2", "scalar"])
@pytest.mark.parametrize("metric", ["leep", "nce"])
@pytest.mark.parametrize(
    "name",
    ["f64", "f32", "f16", "bf16", "logits_f64", "logits_f32", "logits_f16", "logits_bf16"],
)
def test_whole_array_matches_python(builds, data, program, metric, name):
    func = f"{metric}_{name}"
    result = call(builds[program], func, data["paths"][name], data["paths"]["labels"])
    assert result[0] == "ok", result
    assert result[1] == pytest.approx(expected(data, name, metric), rel=RTOL, abs=RTOL)


def test_whole_array_matches_the_reference(builds, data):
    """The exact value, not only the same code: against the NumPy oracle."""
    arr, labels = data["arrays"]["f64"], data["labels"]
    leep = call(builds["c99"], "leep_f64", data["paths"]["f64"], data["paths"]["labels"])
    nce = call(builds["c99"], "nce_f64", data["paths"]["f64"], data["paths"]["labels"])
    assert leep[1] == pytest.approx(
        leepfast._reference.leep(arr, labels, N_TARGET), rel=RTOL
    )
    assert nce[1] == pytest.approx(leepfast._reference.nce(arr, labels, N_TARGET), rel=RTOL)
    assert np.isfinite(leep[1]) and leep[1] < 0  # absent class, massless column: exact


@pytest.mark.parametrize("n_blocks", [1, 7, N_SAMPLES])
@pytest.mark.parametrize("name", ["f64", "f32", "f16", "bf16", "logits_f32", "logits_bf16"])
def test_streaming_primitives_with_merge(builds, data, name, n_blocks):
    ctype = name.split("_")[-1]
    is_logits = int(name.startswith("logits"))
    out = run_clean(
        [
            builds["c99"],
            "stream",
            ctype,
            data["paths"][name],
            data["paths"]["labels"],
            N_SAMPLES,
            N_SOURCE,
            N_TARGET,
            n_blocks,
            is_logits,
        ]
    ).stdout.split()
    assert out[0] == "ok", out
    assert float(out[1]) == pytest.approx(expected(data, name, "leep"), rel=RTOL)
    assert float(out[2]) == pytest.approx(expected(data, name, "nce"), rel=RTOL)
    assert out[3] == "pairs-free-same"  # hard = NULL: the same joint, no pair counts


def test_one_hot_rows_give_leep_equal_to_nce(builds, tmp_path):
    """Paper property: with one-hot predictions LEEP == NCE."""
    rng = np.random.default_rng(5)
    z = rng.integers(0, 4, size=50)
    y = ((z + rng.integers(0, 2, size=50)) % 3).astype(np.int64)
    theta = np.eye(4)[z]
    theta.tofile(tmp_path / "p.bin")
    y.tofile(tmp_path / "y.i64")
    args = (tmp_path / "p.bin", tmp_path / "y.i64", 50, 4, 3)
    leep = call(builds["c99"], "leep_f64", *args)[1]
    nce = call(builds["c99"], "nce_f64", *args)[1]
    assert leep == pytest.approx(nce, rel=RTOL)
    assert nce == pytest.approx(leepfast._reference.nce(theta, y, 3), rel=RTOL)


# ---------------------------------------------------------------------------------------
# The example program


@pytest.mark.parametrize("labels", ["labels_txt", "labels"])
def test_example_matches_python(builds, data, labels):
    out = run_clean(
        [builds["example"], data["paths"]["f32"], data["paths"][labels], N_SOURCE, N_TARGET]
    ).stdout
    values = dict(line.split() for line in out.splitlines())
    assert float(values["leep"]) == pytest.approx(expected(data, "f32", "leep"), rel=RTOL)
    assert float(values["nce"]) == pytest.approx(expected(data, "f32", "nce"), rel=RTOL)


def test_example_default_n_target_is_max_label_plus_one(builds, data):
    out = run_clean(
        [builds["example"], data["paths"]["f32"], data["paths"]["labels_txt"], N_SOURCE]
    ).stdout
    leep = float(out.split()[1])
    arr, labels = data["arrays"]["f32"], data["labels"]
    assert leep == pytest.approx(leepfast.leep(arr, labels), rel=RTOL)


def test_example_reports_bad_input(builds, data, tmp_path):
    labels = data["labels"].copy()
    labels[3] = N_TARGET
    (tmp_path / "bad.txt").write_text("".join(f"{v}\n" for v in labels))
    proc = subprocess.run(
        [
            str(builds["example"]),
            str(data["paths"]["f32"]),
            str(tmp_path / "bad.txt"),
            str(N_SOURCE),
            str(N_TARGET),
        ],
        capture_output=True,
        text=True,
        env={},
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "label is outside [0, n_target)" in proc.stderr
    proc = subprocess.run(
        [
            str(builds["example"]),
            str(data["paths"]["f32"]),
            str(data["paths"]["labels"]),
            str(N_SOURCE - 1),
        ],
        capture_output=True,
        text=True,
        env={},
    )
    assert proc.returncode == 2
    assert "not a whole number of rows" in proc.stderr


# ---------------------------------------------------------------------------------------
# Bad input: a specific status, the output never written


def _bad_file(data, tmp_path, name, edit):
    arr = data["arrays"][name].copy()
    if is_bfloat16(arr.dtype):  # edited as floats, rounded back
        values = widen_bfloat16(arr)
        edit(values)
        arr = bfloat16_of(values)
    else:
        edit(arr)
    path = tmp_path / f"bad_{name}.bin"
    arr.tofile(path)
    return path


def _set(row, col, value):
    def edit(arr):
        arr[row, col] = value

    return edit


def _shift_mass(row, amount):
    def edit(arr):  # keeps the row sum: one entry goes negative
        arr[row, 1] += arr[row, 0] + 2 * amount
        arr[row, 0] = -amount

    return edit


def _scale(row, factor):
    def edit(arr):
        arr[row] *= factor

    return edit


BAD_VALUES = [
    ("f64", _set(17, 2, np.nan), _status.ERR_NONFINITE),
    ("f32", _set(17, 2, np.inf), _status.ERR_NONFINITE),
    ("f16", _set(17, 2, np.nan), _status.ERR_NONFINITE),
    ("logits_f64", _set(17, 2, np.inf), _status.ERR_NONFINITE),
    ("logits_f32", _set(17, slice(None), -np.inf), _status.ERR_NONFINITE),
    ("logits_f16", _set(17, 2, np.nan), _status.ERR_NONFINITE),
    ("f64", _shift_mass(17, 0.25), _status.ERR_NEGATIVE),
    ("f32", _shift_mass(17, 0.25), _status.ERR_NEGATIVE),
    ("f16", _shift_mass(17, 0.25), _status.ERR_NEGATIVE),
    ("f64", _scale(17, 1 + 1e-5), _status.ERR_NOT_NORMALISED),
    ("f32", _scale(17, 1.001), _status.ERR_NOT_NORMALISED),
    ("f16", _scale(17, 1.1), _status.ERR_NOT_NORMALISED),
    ("bf16", _set(17, 2, np.inf), _status.ERR_NONFINITE),
    ("logits_bf16", _set(17, 2, np.nan), _status.ERR_NONFINITE),
    ("bf16", _shift_mass(17, 0.25), _status.ERR_NEGATIVE),
    ("bf16", _scale(17, 1.1), _status.ERR_NOT_NORMALISED),
]


@pytest.mark.parametrize("metric", ["leep", "nce"])
@pytest.mark.parametrize(("name", "edit", "status"), BAD_VALUES)
def test_bad_values(builds, data, tmp_path, metric, name, edit, status):
    path = _bad_file(data, tmp_path, name, edit)
    result = call(builds["c99"], f"{metric}_{name}", path, data["paths"]["labels"])
    assert result[:3] == ("status", status, True), result
    # and Python fails on the same file, the same way
    arr = np.fromfile(path, dtype=data["arrays"][name].dtype).reshape(-1, N_SOURCE)
    assert is_bfloat16(arr.dtype) == name.endswith("bf16")  # fromfile keeps the mark
    with pytest.raises(ValueError, match="row 17"):
        leepfast.leep(
            arr, data["labels"], n_target=N_TARGET, logits=name.startswith("logits")
        )


@pytest.mark.parametrize("bad_label", [N_TARGET, -1, 2**40])
@pytest.mark.parametrize("func", ["leep_f64", "nce_f32", "leep_logits_f16"])
def test_label_out_of_range(builds, data, tmp_path, bad_label, func):
    labels = data["labels"].copy()
    labels[100] = bad_label
    labels.tofile(tmp_path / "bad.i64")
    name = func.split("_", 1)[1]
    result = call(builds["c99"], func, data["paths"][name], tmp_path / "bad.i64")
    assert result[:3] == ("status", _status.ERR_LABEL, True), result


@pytest.mark.parametrize("null", ["predictions", "labels", "out"])
@pytest.mark.parametrize("func", ["leep_f64", "nce_f16", "leep_logits_f32"])
def test_null_pointers(builds, data, func, null):
    name = func.split("_", 1)[1]
    result = call(
        builds["c99"], func, data["paths"][name], data["paths"]["labels"], null=null
    )
    assert result[:3] == ("status", _status.ERR_NULL, True), result


@pytest.mark.parametrize(
    ("n", "z", "y"),
    [
        (0, N_SOURCE, N_TARGET),
        (N_SAMPLES, 0, N_TARGET),
        (N_SAMPLES, N_SOURCE, 0),
        (-1, N_SOURCE, N_TARGET),
        (N_SAMPLES, -5, N_TARGET),
        (N_SAMPLES, N_SOURCE, -2),
        (2**62, 4, N_TARGET),  # n_samples * n_source overflows int64
    ],
)
@pytest.mark.parametrize("func", ["leep_f32", "nce_f64"])
def test_bad_sizes(builds, data, func, n, z, y):
    name = func.split("_", 1)[1]
    result = call(
        builds["c99"], func, data["paths"][name], data["paths"]["labels"], n=n, z=z, y=y
    )
    assert result[:3] == ("status", _status.ERR_SIZE, True), result


@pytest.mark.parametrize("program", ["c99", "asan"])
def test_merge_and_nce_from_counts_bad_arguments(builds, program):
    lines = run_clean([builds[program], "edges"]).stdout.splitlines()
    results = {line.split()[0]: line.split()[1:] for line in lines}
    expected_status = {
        "merge_null_joint": _status.ERR_NULL,
        "merge_null_hard": _status.ERR_NULL,
        "merge_null_counts": _status.ERR_NULL,
        "merge_null_other": _status.ERR_NULL,
        "merge_null_hard_other": _status.ERR_NULL,
        "merge_null_counts_other": _status.ERR_NULL,
        "merge_zero_target": _status.ERR_SIZE,
        "merge_zero_source": _status.ERR_SIZE,
        "merge_negative_size": _status.ERR_SIZE,
        "nce_null_counts": _status.ERR_NULL,
        "nce_null_out": _status.ERR_NULL,
        "nce_zero_target": _status.ERR_SIZE,
        "nce_zero_source": _status.ERR_SIZE,
        "nce_no_counts": _status.ERR_SIZE,
        "nce_negative_count": _status.ERR_NEGATIVE,
    }
    for case, status in expected_status.items():
        assert results[case] == [str(status), "untouched"], case
    # merging a state with itself doubles it: joint[1, 2] = 6, hard[1, 1] = 3, counts[1] = 3
    assert results["merge_self"] == ["0", "12", "6", "6"]


def test_state_too_large_is_nomem(builds, data):
    """n_target * n_source cells cannot be allocated: NOMEM, before reading any row."""
    result = call(
        builds["c99"],
        "leep_f64",
        data["paths"]["f64"],
        data["paths"]["labels"],
        n=1,
        z=2**23,
        y=2**40,
    )
    assert result[:3] == ("status", _status.ERR_NOMEM, True), result


# ---------------------------------------------------------------------------------------
# Sanitizers


def test_sanitizers(builds, data, tmp_path):
    """Valid and invalid inputs under ASan + UBSan: any report aborts the program."""
    program = builds["asan"]
    for name in ("f64", "f32", "f16", "logits_f32"):
        for metric in ("leep", "nce"):
            result = call(
                program, f"{metric}_{name}", data["paths"][name], data["paths"]["labels"]
            )
            assert result[1] == pytest.approx(expected(data, name, metric), rel=RTOL)
    out = run_clean(
        [
            program,
            "stream",
            "f16",
            data["paths"]["f16"],
            data["paths"]["labels"],
            N_SAMPLES,
            N_SOURCE,
            N_TARGET,
            7,
            0,
        ]
    ).stdout
    assert float(out.split()[1]) == pytest.approx(expected(data, "f16", "leep"), rel=RTOL)
    nan = _bad_file(data, tmp_path, "f32", _set(N_SAMPLES - 1, N_SOURCE - 1, np.nan))
    assert call(program, "leep_f32", nan, data["paths"]["labels"])[:3] == (
        "status",
        _status.ERR_NONFINITE,
        True,
    )
    labels = data["labels"].copy()
    labels[-1] = N_TARGET
    labels.tofile(tmp_path / "bad.i64")
    assert call(program, "nce_f16", data["paths"]["f16"], tmp_path / "bad.i64")[:3] == (
        "status",
        _status.ERR_LABEL,
        True,
    )
    for null in ("predictions", "labels", "out"):
        assert call(
            program, "leep_f64", data["paths"]["f64"], data["paths"]["labels"], null=null
        )[:2] == ("status", _status.ERR_NULL)


# ---------------------------------------------------------------------------------------
# Cython: a module compiled at test time that cimports leepfast/libleepfast.pxd

CYTHON_MODULE = """
# cython: language_level=3
from libc.stdint cimport int64_t, uint16_t
from leepfast.libleepfast cimport (
    LEEPFAST_OK, LEEPFAST_VERSION_MAJOR, LEEPFAST_VERSION_MINOR, LEEPFAST_VERSION_PATCH,
    leepfast_leep_f64, leepfast_nce_f32, leepfast_leep_f16, leepfast_strerror,
)
cimport leepfast.libleepfast as lf

VERSION = (LEEPFAST_VERSION_MAJOR, LEEPFAST_VERSION_MINOR, LEEPFAST_VERSION_PATCH)


def null_statuses():
    # every declaration of the .pxd, called with its pointers NULL: the C compiler checks
    # each call against the prototype in leepfast.h (-Werror=incompatible-pointer-types)
    cdef const uint16_t *h = NULL
    cdef const float *f = NULL
    cdef const double *d = NULL
    cdef const int64_t *y = NULL
    cdef double *out = NULL
    cdef int64_t *w = NULL
    cdef int st[21]
    with nogil:
{whole_array_calls}        st[12] = lf.leepfast_accumulate_f16(h, y, 1, 1, 1, 0,
                lf.LEEPFAST_TOL_F16, out, w, w, out, w)
        st[13] = lf.leepfast_accumulate_f32(f, y, 1, 1, 1, 0,
                lf.LEEPFAST_TOL_F32, out, w, w, out, w)
        st[14] = lf.leepfast_accumulate_f64(d, y, 1, 1, 1, 0,
                lf.LEEPFAST_TOL_F64, out, w, w, out, w)
        st[15] = lf.leepfast_merge(out, w, w, d, y, y, 1, 1)
        st[16] = lf.leepfast_conditional(d, 1, 1, out)
        st[17] = lf.leepfast_nce_from_counts(y, 1, 1, out)
        st[18] = lf.leepfast_score_f16(h, y, 1, 1, 1, 0, d, out, out, w)
        st[19] = lf.leepfast_score_f32(f, y, 1, 1, 1, 0, d, out, out, w)
        st[20] = lf.leepfast_score_f64(d, y, 1, 1, 1, 0, d, out, out, w)
    statuses = [st[i] for i in range(21)]
    return statuses, lf.LEEPFAST_SCRATCH(7), lf.LEEPFAST_ERR_NULL
"""
# the whole-array calls the test makes, one wrapper each: (status, value, message)
CYTHON_CALL = """

def {name}(const {element}[:, ::1] p, const int64_t[::1] y, int64_t n_target):
    cdef double out = 99.0
    cdef int status
    with nogil:
        status = leepfast_{name}(&p[0, 0], &y[0], p.shape[0], p.shape[1], n_target, &out)
    return status, out, leepfast_strerror(status).decode()
"""
# the twelve whole-array functions, each called with NULL pointers by null_statuses
WHOLE_ARRAY_CALLS = [
    (kind, t, pointer)
    for kind in ("leep", "nce", "leep_logits", "nce_logits")
    for t, pointer in (("f16", "h"), ("f32", "f"), ("f64", "d"))
]
CYTHON_MODULE = CYTHON_MODULE.replace(
    "{whole_array_calls}",
    "".join(
        f"        st[{i}] = lf.leepfast_{kind}_{t}({pointer}, y, 1, 1, 1, out)\n"
        for i, (kind, t, pointer) in enumerate(WHOLE_ARRAY_CALLS)
    ),
)
CYTHON_MODULE += "".join(
    CYTHON_CALL.format(name=name, element=element)
    for name, element in [
        ("leep_f64", "double"),
        ("nce_f32", "float"),
        ("leep_f16", "uint16_t"),
    ]
)


@pytest.fixture(scope="session")
def cython_module(tmp_path_factory):
    from Cython.Build import cythonize

    folder = tmp_path_factory.mktemp("c_api_cython")
    pyx = folder / "use_leepfast.pyx"
    pyx.write_text(CYTHON_MODULE)
    # The folder holding the leepfast package: site-packages in a regular install (on
    # sys.path, so Cython finds the .pxd anyway), the source tree in an editable one.
    package_parent = str(Path(leepfast.__file__).resolve().parent.parent)
    cythonize([str(pyx)], include_path=[package_parent], quiet=True, force=True)
    target = folder / ("use_leepfast" + sysconfig.get_config_var("EXT_SUFFIX"))
    run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-Werror=incompatible-pointer-types",
            "-Werror=int-conversion",
            f"-I{sysconfig.get_paths()['include']}",
            f"-I{include_dir()}",
            "-o",
            target,
            folder / "use_leepfast.c",
            *c_sources(),
            "-lm",
        ]
    )
    spec = importlib.util.spec_from_file_location("use_leepfast", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cython_cimport(cython_module, data):
    labels = data["labels"]
    assert ".".join(map(str, cython_module.VERSION)) == leepfast.__version__
    statuses, scratch, err_null = cython_module.null_statuses()
    assert err_null == _status.ERR_NULL
    assert statuses == [_status.ERR_NULL] * 21
    assert scratch == 14
    status, value, message = cython_module.leep_f64(data["arrays"]["f64"], labels, N_TARGET)
    assert (status, message) == (0, "success")
    assert value == pytest.approx(expected(data, "f64", "leep"), rel=RTOL)
    status, value, _ = cython_module.nce_f32(data["arrays"]["f32"], labels, N_TARGET)
    assert status == 0
    assert value == pytest.approx(expected(data, "f32", "nce"), rel=RTOL)
    status, value, _ = cython_module.leep_f16(
        data["arrays"]["f16"].view(np.uint16), labels, N_TARGET
    )
    assert status == 0
    assert value == pytest.approx(expected(data, "f16", "leep"), rel=RTOL)
    # nogil calls from many Python threads at once: same value each time
    with ThreadPoolExecutor(max_workers=4) as pool:
        values = list(
            pool.map(
                lambda _: cython_module.leep_f64(data["arrays"]["f64"], labels, N_TARGET)[
                    1
                ],
                range(16),
            )
        )
    assert values == [values[0]] * 16
    assert values[0] == pytest.approx(expected(data, "f64", "leep"), rel=RTOL)
    bad = labels.copy()
    bad[0] = N_TARGET
    status, value, message = cython_module.leep_f64(data["arrays"]["f64"], bad, N_TARGET)
    assert (status, value) == (_status.ERR_LABEL, 99.0)
    assert "label" in message


FIXED_POINT_CHECK = CHECK_SOURCE.parent / "c_fixed_point_check.c"


def test_float16_fixed_point_pass_under_sanitizers(tmp_path):
    # the internal fixed-point pass 1 (AVX2 and AVX-512 caps; a CPU without AVX-512 runs
    # its best level for both) against the plain pass, under ASan and UBSan
    program = tmp_path / "fixed_point_check"
    run(
        [
            "gcc",
            "-std=c99",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            *SOURCE_FLAGS,
            f"-I{include_dir()}",
            "-o",
            program,
            FIXED_POINT_CHECK,
            *c_sources(),
            "-lm",
        ]
    )
    assert run_clean([program]).stdout == "ok\n"
