"""No kernel reads outside the caller's array: arrays whose last byte sits just before an
inaccessible page (PROT_NONE), or whose first byte sits just after one.

Several row kernels read whole vectors from a row's start whatever its length (small rows
read as quarters of 4 values, AVX2 small-row groups, the branch-free argmax scan, the
Numba rows in LLVM IR with 4-lane loads), relying on the last rows of a block being
copied to a buffer first. An overread is invisible on most arrays and a SIGSEGV on one
that ends at an unmapped page (a memory-mapped file, the end of an allocation); these
tests place every array there on purpose.

All the cases of one SIMD level (compiled backend) or one backend run in ONE fresh
interpreter (this file run as a script): the level cap ``LEEPFAST_SIMD`` is set in its
environment, and a crash fails only that test, with the case that was running (printed,
flushed, before each case) and the interpreter's stderr. The interpreters are started
together when the module's first test runs, so the module costs about the slowest one.
Every score is compared with the NumPy reference (on the widened values for float16 and
bfloat16) at 1e-12 relative.
"""

import ctypes
import math
import mmap
import os
import subprocess
import sys
import tempfile

import numpy as np

import leepfast
from leepfast import _reference
from leepfast._errors import NonFiniteError, RowSumError
from leepfast._tensors import BFLOAT16, widen_bfloat16

PAGE = mmap.PAGESIZE
WIDTHS = [*range(1, 21), 31, 32, 33, 100, 255, 256, 257, 1000, 1001]
ROWS = [1, 2, 3, 5, 8, 17, 100]
DTYPES = ["float16", "float32", "float64", "bfloat16"]
N_TARGET = 3
REL = 1e-12
ABS = 1e-12  # LEEP of one row is log(its sum), about 1e-16
TIMEOUT = 900  # a cold Numba cache on a loaded machine took about 290 s

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mprotect.restype = ctypes.c_int
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.mmap.restype = ctypes.c_void_p
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = (
    mmap.MAP_SHARED,
    mmap.MAP_PRIVATE,
    mmap.MAP_ANONYMOUS,
)
MAP_FIXED = 0x10  # Linux; not in the mmap module
PROT_NONE = 0  # not in the mmap module
MAP_FAILED = ctypes.c_void_p(-1).value


def _protect(address, length):
    if _libc.mprotect(address, length, PROT_NONE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mprotect(PROT_NONE): {os.strerror(err)}")


def guarded(dtype, count, at_end=True):
    """A 1-D array of ``count`` items in an anonymous map whose first and last pages are
    PROT_NONE: its last byte is the last byte before the trailing guard (``at_end``), or
    its first byte the first after the leading guard."""
    dtype = np.dtype(dtype)
    nbytes = count * dtype.itemsize
    k = max(1, -(-nbytes // PAGE))
    m = mmap.mmap(-1, (k + 2) * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    _protect(base, PAGE)
    _protect(base + (k + 1) * PAGE, PAGE)
    offset = (k + 1) * PAGE - nbytes if at_end else PAGE
    raw = np.frombuffer(m, np.uint8, nbytes, offset)
    return raw.view(np.uint16).view(BFLOAT16) if dtype == BFLOAT16 else raw.view(dtype)


def file_map_before_guard(path, dtype, shape, offset, fortran):
    """A read-only array of a file's data (ending at the end of the file, at a page
    boundary), mapped with a PROT_NONE page right after it; never unmapped (the process
    is short)."""
    count = math.prod(shape)
    start = offset - offset % PAGE
    length = offset - start + count * dtype.itemsize
    assert length % PAGE == 0, (path, offset, length)
    base = _libc.mmap(None, length + PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    assert base not in (None, MAP_FAILED), ctypes.get_errno()
    fd = os.open(path, os.O_RDONLY)
    try:
        got = _libc.mmap(base, length, mmap.PROT_READ, MAP_SHARED | MAP_FIXED, fd, start)
    finally:
        os.close(fd)
    assert got == base, ctypes.get_errno()
    raw = (ctypes.c_char * length).from_address(base)
    data = np.frombuffer(raw, dtype, count, offset - start)
    data = data.reshape(shape, order="F" if fortran else "C")
    data.flags.writeable = False
    return data


def as_dtype(values, name):
    """float64 values in ``name`` (bfloat16: BFLOAT16 bits, rounded to nearest even)."""
    if name == "bfloat16":
        bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16).view(BFLOAT16)
    return np.asarray(values).astype(name)


def wide(a):
    """The values of ``a`` in a new float64 array (bfloat16 widened exactly)."""
    if a.dtype == BFLOAT16:
        return widen_bfloat16(np.ascontiguousarray(a)).astype(np.float64)
    return np.array(a, np.float64)


def make_rows(rng, n, z, name, logits):
    """(n, z) values of dtype ``name``: logits, or probability rows whose sum is 1 to far
    within the tolerance after rounding (the residual put on each row's largest entry)."""
    if logits:
        return as_dtype(rng.normal(0.0, 3.0, (n, z)), name)
    theta = rng.random((n, z)) ** 3
    theta[rng.random((n, z)) < 0.3] = 0.0
    theta[np.arange(n), rng.integers(0, z, n)] += 0.05
    theta /= theta.sum(axis=1, keepdims=True)
    out = as_dtype(theta, name)
    w = wide(out)
    top = w.argmax(axis=1)
    w[np.arange(n), top] += 1.0 - w.sum(axis=1)
    return as_dtype(np.maximum(w, 0.0), name)


def placements(src, n, z):
    """(name, array) pairs of the values of ``src`` (n, z) ending at / starting at a
    guard page, as a row slice, and non-contiguous (every other column, Fortran order)."""
    dt = src.dtype
    a = guarded(dt, n * z).reshape(n, z)
    a[...] = src
    yield "end", a
    a = guarded(dt, n * z, at_end=False).reshape(n, z)
    a[...] = src
    yield "start", a
    a = guarded(dt, (n + 1) * z).reshape(n + 1, z)
    a[1:] = src
    yield "slice", a[1:]
    a = guarded(dt, n * 2 * z).reshape(n, 2 * z)
    a[:, 1::2] = src
    yield "strided", a[:, 1::2]
    a = guarded(dt, n * z).reshape(z, n)
    a[...] = src.T
    yield "fortran", a.T


def reference(values, labels, logits):
    theta = _reference.softmax(values) if logits else values
    return (
        _reference.leep(theta, labels, N_TARGET),
        _reference.nce(theta, labels, N_TARGET),
    )


def close(got, want):
    return abs(got - want) <= ABS + REL * abs(want)


class Worker:
    """The cases of one backend at one level, each announced before it runs."""

    def __init__(self, backend):
        self.backend = backend
        self.failures = []
        self.count = 0

    def announce(self, text):
        self.count += 1
        print("CASE", text, flush=True)

    def check(self, text, got, want):
        if not close(got, want):
            self.failures.append(f"{text}: got {got!r}, want {want!r}")

    def scores(self, desc, a, labels, want, logits, **options):
        opts = dict(backend=self.backend, logits=logits, n_target=N_TARGET, **options)
        self.announce(f"{desc} score {options}")
        r = leepfast.score(a, labels, **opts)
        self.check(f"{desc} score.leep {options}", r.leep, want[0])
        self.check(f"{desc} score.nce {options}", r.nce, want[1])

    def bad(self, desc, a, labels, logits, error, **options):
        """A bad value in the last row, in the last column: the proper error, naming
        the last row."""
        self.announce(f"{desc} bad {error.__name__} {options}")
        try:
            leepfast.score(
                a, labels, backend=self.backend, logits=logits, n_target=N_TARGET, **options
            )
        except error as err:
            if f"row {len(a) - 1}" not in str(err):
                self.failures.append(f"{desc} bad: {err} does not name row {len(a) - 1}")
        else:
            self.failures.append(f"{desc} bad: no {error.__name__}")

    def run_arrays(self):
        rng = np.random.default_rng(7)
        for name in DTYPES:
            for logits in (False, True):
                for z in WIDTHS:
                    for n in ROWS:
                        self.one(rng, name, logits, z, n)

    def one(self, rng, name, logits, z, n):
        kind = "logits" if logits else "probs"
        src = make_rows(rng, n, z, name, logits)
        labels = np.arange(n) % N_TARGET
        want = reference(wide(src), labels, logits)
        for where, a in placements(src, n, z):
            desc = f"{name} {kind} z={z} n={n} {where}"
            self.scores(desc, a, labels, want, logits)
            if where != "end":
                continue
            self.announce(f"{desc} leep/nce")
            opts = dict(backend=self.backend, logits=logits, n_target=N_TARGET)
            self.check(f"{desc} leep", leepfast.leep(a, labels, **opts), want[0])
            self.check(f"{desc} nce", leepfast.nce(a, labels, **opts), want[1])
            # block ends everywhere: small blocks, two threads
            for block in sorted({1, 2, 3, 7} & set(range(1, n))):
                self.scores(desc, a, labels, want, logits, block_size=block, n_threads=2)
            if n > 1:
                self.scores(desc, a, labels, want, logits, n_threads=2)
        # the last row bad, in its last column, ending at the guard page
        desc = f"{name} {kind} z={z} n={n} end"
        values = wide(src)
        values[-1, -1] = np.nan
        a = next(placements(as_dtype(values, name), n, z))[1]
        self.bad(desc, a, labels, logits, NonFiniteError)
        self.bad(desc, a, labels, logits, NonFiniteError, block_size=1, n_threads=2)
        if not logits:
            values = wide(src)
            values[-1] *= 0.5
            a = next(placements(as_dtype(values, name), n, z))[1]
            self.bad(desc, a, labels, logits, RowSumError)
            self.bad(desc, a, labels, logits, RowSumError, block_size=1, n_threads=2)

    def run_files(self, folder):
        """.npy files whose data ends at the end of the file, at a page boundary, read by
        score_files. The reader's map of the data (``map_data``) is made here at a place
        chosen so that the page after it is PROT_NONE (where ``np.memmap`` puts a map is
        the kernel's choice, often right below another map); the reader then reads it
        as it reads its own map."""
        from leepfast.readers import mapped

        map_data = mapped.map_data

        def guarding_map_data(path, dtype, shape, offset, fortran, role="predictions"):
            if role != "predictions":
                return map_data(path, dtype, shape, offset, fortran, role)
            return file_map_before_guard(path, dtype, shape, offset, fortran)

        mapped.map_data = guarding_map_data
        rng = np.random.default_rng(11)
        n_files = 0
        try:
            for name in ("float16", "float32", "float64"):
                itemsize = np.dtype(name).itemsize
                for logits in (False, True):
                    for z in (1, 2, 3, 5, 7, 9, 15, 17, 33):
                        row = z * itemsize
                        path = os.path.join(folder, f"{name}-{logits}-{z}.npy")
                        # the header is 128 bytes for these shapes: n rows end the file
                        # at a page boundary when 128 + n * row = 0 mod PAGE
                        n = next(
                            k for k in range(1, PAGE + 1) if (128 + k * row) % PAGE == 0
                        )
                        src = make_rows(rng, n, z, name, logits)
                        np.save(path, src)
                        size = os.path.getsize(path)
                        assert size % PAGE == 0 and size == 128 + src.nbytes, (path, size)
                        labels = np.arange(n) % N_TARGET
                        want = reference(wide(src), labels, logits)
                        kind = "logits" if logits else "probs"
                        for options in ({}, {"block_size": 3, "n_threads": 2}):
                            desc = f"file {name} {kind} z={z} n={n}"
                            self.announce(f"{desc} score_files {options}")
                            r = leepfast.score_files(
                                path,
                                labels,
                                backend=self.backend,
                                logits=logits,
                                n_target=N_TARGET,
                                **options,
                            )
                            self.check(f"{desc} leep {options}", r.leep, want[0])
                            self.check(f"{desc} nce {options}", r.nce, want[1])
                            n_files += 1
        finally:
            mapped.map_data = map_data
        print(f"FILES {n_files}", flush=True)


def main(backend):
    worker = Worker(backend)
    worker.run_arrays()
    with tempfile.TemporaryDirectory() as folder:
        worker.run_files(folder)
    print(f"DONE {worker.count} cases", flush=True)
    for failure in worker.failures:
        print("WRONG", failure, flush=True)
    return 1 if worker.failures else 0


# ---------------------------------------------------------------------------------------
# The tests: one interpreter per level of the compiled backend, and per other backend


def _runs():
    """(test id, backend, LEEPFAST_SIMD value or None) of every run this CPU allows."""
    runs = []
    available = leepfast.available_backends()
    if "cython" in available:
        from leepfast import _kernels
        from leepfast._config import SIMD_LEVELS

        top = _kernels.simd_level()
        for i, level in enumerate(SIMD_LEVELS):
            # a level the CPU lacks is not run (its id says so)
            runs.append(
                (
                    f"cython-{level}" if i <= top else f"cython-{level}-not-on-this-cpu",
                    "cython",
                    level if i <= top else None,
                )
            )
    for backend in ("numba", "numpy"):
        if backend in available:
            runs.append((backend, backend, None))
    return runs


RUNS = _runs()


def _started():
    """Start every run's interpreter at once (a module-level cache): the test of a run
    then waits for its own."""
    if not _started.procs:
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(leepfast.__file__)))
        for run_id, backend, level in RUNS:
            if backend == "cython" and level is None:
                continue
            env = dict(os.environ)
            path = env.get("PYTHONPATH")
            env["PYTHONPATH"] = package_root + (os.pathsep + path if path else "")
            env.pop("LEEPFAST_SIMD", None)
            if level is not None:
                env["LEEPFAST_SIMD"] = level
            _started.procs[run_id] = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), backend],
                cwd=tempfile.gettempdir(),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
    return _started.procs


_started.procs = {}


def _test(run_id):
    import pytest

    proc = _started()[run_id]
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{run_id}: timed out after {TIMEOUT} s", pytrace=False)
    lines = out.splitlines()
    cases = [line for line in lines if line.startswith("CASE ")]
    wrong = [line for line in lines if line.startswith("WRONG ")]
    last = cases[-1] if cases else "(before the first case)"
    if proc.returncode < 0:
        pytest.fail(
            f"{run_id}: the interpreter died of signal {-proc.returncode} during {last}\n"
            f"stderr:\n{err[-4000:]}",
            pytrace=False,
        )
    if proc.returncode != 0 or wrong:
        shown = "\n".join(wrong[:30])
        pytest.fail(
            f"{run_id}: exit code {proc.returncode}, {len(wrong)} wrong values\n{shown}\n"
            f"last case: {last}\nstderr:\n{err[-4000:]}",
            pytrace=False,
        )
    assert lines[-1].startswith("DONE"), lines[-3:]
    assert len(cases) > 10000
    files = [line for line in lines if line.startswith("FILES ")]
    assert files == ["FILES 108"], files


def _make_test(run_id, backend, level):
    if backend == "cython" and level is None:

        def test(run_id=run_id):
            import pytest

            pytest.skip(f"{run_id}: this CPU lacks the level; nothing to run")

    else:

        def test(run_id=run_id):
            _test(run_id)

    test.__name__ = f"test_no_read_outside_the_array_{run_id.replace('-', '_')}"
    test.__doc__ = f"Every case of {run_id} on arrays at a guard page, in one interpreter."
    return test


if __name__ != "__main__":
    for _run in RUNS:
        _t = _make_test(*_run)
        globals()[_t.__name__] = _t
    del _run, _t

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
