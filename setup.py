"""Build the compiled kernels, ``leepfast._kernels``, from ``src_cython/``.

OpenMP is found by trying to compile and link a small program with it. Without it the
build warns and produces a serial extension. Environment switches:

- ``LEEPFAST_SERIAL=1``: build without OpenMP even when the compiler has it;
- ``LEEPFAST_DEBUG=1``: turn Cython's bounds, wraparound and initialisation checks back on
  and compile with ``-O0 -g``.

No ``-march=native``: the wheel must run on any CPU of its architecture.
"""

import importlib.util
import os
import tempfile
import textwrap
import warnings

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("LEEPFAST_DEBUG", "") not in ("", "0")
SERIAL = os.environ.get("LEEPFAST_SERIAL", "") not in ("", "0")

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
    }
    """
)


def openmp_flags(compiler):
    """(compile_args, link_args) that enable OpenMP, or None when it does not work."""
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "omp_test.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(
                    objs, "omp_test", output_dir=tmp, extra_postargs=lflags
                )
            except Exception:  # any compile or link failure means: no OpenMP
                continue
        return cflags, lflags
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        flags = None
        if SERIAL:
            print("leepfast: LEEPFAST_SERIAL set, building without OpenMP")
        else:
            flags = openmp_flags(self.compiler)
            if flags is None:
                warnings.warn(
                    "leepfast: the C compiler does not support OpenMP; building a serial "
                    "extension (every n_threads value will run on one thread)",
                    stacklevel=1,
                )
        for ext in self.extensions:
            if self.compiler.compiler_type == "msvc":
                ext.extra_compile_args += ["/O2"]
            else:
                ext.extra_compile_args += ["-O0", "-g"] if DEBUG else ["-O3"]
            if flags is not None:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
        super().build_extensions()


# The C API (leepfast.get_include()): copied from src_cython/ into leepfast/include/ of
# the built package, so the repository holds one copy. An editable install has no such
# copy; get_include() then returns src_cython/ itself. src_cython/manifest.txt is the one
# list of its files; leepfast/_include.py parses it (loaded here from its file, since
# the package cannot be imported before it is built), and examples/c/Makefile reads it.
def read_manifest():
    """(sources to compile, every file) of src_cython/manifest.txt."""
    path = os.path.join(HERE, "leepfast", "_include.py")
    spec = importlib.util.spec_from_file_location("_leepfast_include", path)
    include = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(include)
    listed = include._manifest(os.path.join(HERE, "src_cython"))
    if listed is None:
        raise FileNotFoundError(f"src_cython/{include.MANIFEST}: the C core's file list")
    return listed


C_SOURCES, C_API_FILES = read_manifest()


class BuildPy(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, "leepfast", "include")
        self.mkpath(target)
        for name in C_API_FILES:
            self.copy_file(os.path.join(HERE, "src_cython", name), target)


directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(
        "leepfast._kernels",
        sources=["src_cython/_kernels.pyx"] + [f"src_cython/{n}" for n in C_SOURCES],
        include_dirs=["src_cython"],
        depends=[f"src_cython/{n}" for n in C_API_FILES if n not in C_SOURCES],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, quiet=True),
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
)
