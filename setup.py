"""Build fastconv's Cython extension modules.

OpenMP is optional: the flags are chosen per compiler, probed with a tiny test
program, and dropped (with a warning) when the compiler cannot use them. The
compiled modules then run single-threaded, and ``fastconv.show_config()`` says so.
Set ``FASTCONV_NO_OPENMP=1`` to build without OpenMP on purpose.

No ``-march=native``: the extension must run on any x86-64 (or other) CPU that
the Python build itself supports.
"""

import glob
import os
import shutil
import sys
import tempfile
import textwrap

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXTENSIONS = ["_openmp", "_conv", "_pool", "_depthwise", "_elementwise", "_image",
              "_resize", "_norm", "_winograd", "_nchw"]


def _openmp_flags(compiler_type):
    """Return (compile_args, link_args) for OpenMP with this compiler type."""
    if compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang needs libomp installed separately (e.g. from Homebrew).
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def _compiles_with(compiler, compile_args, link_args):
    """True when a small OpenMP program compiles and links with these flags."""
    code = textwrap.dedent(
        """\
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return omp_get_max_threads() > 0 ? 0 : 1;
        }
        """
    )
    tmp = tempfile.mkdtemp(prefix="fastconv-omp-")
    try:
        src = os.path.join(tmp, "check_openmp.c")
        with open(src, "w") as f:
            f.write(code)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        compiler.link_executable(
            objects, "check_openmp", output_dir=tmp, extra_postargs=link_args
        )
        return True
    except Exception:  # any compile or link failure means "no OpenMP here"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags only where they work."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if os.environ.get("FASTCONV_NO_OPENMP", "") not in ("", "0"):
            print("fastconv: FASTCONV_NO_OPENMP is set; building without OpenMP")
            cargs, largs = [], []
        else:
            cargs, largs = _openmp_flags(ctype)
            if not _compiles_with(self.compiler, cargs, largs):
                print(
                    "fastconv: WARNING: this compiler cannot build OpenMP code; "
                    "fastconv will run single-threaded"
                )
                cargs, largs = [], []
        # -fno-math-errno: no kernel reads errno, and without it sqrt cannot vectorise.
        opt = ["/O2"] if ctype == "msvc" else ["-O3", "-fno-math-errno"]
        if os.environ.get("FASTCONV_SANITIZE", "") not in ("", "0"):
            # tools/sanitize.sh: AddressSanitizer and UBSan, at -O1 so that no read the
            # source makes is optimised away, with frames kept for the reports.
            print("fastconv: FASTCONV_SANITIZE is set; building with ASan and UBSan")
            opt = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-math-errno",
                   "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
            largs = largs + ["-fsanitize=address,undefined"]
        for ext in self.extensions:
            ext.extra_compile_args = opt + cargs + ext.extra_compile_args
            ext.extra_link_args = largs + ext.extra_link_args
        super().build_extensions()


def _extensions():
    from Cython.Build import cythonize

    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
    exts = [
        Extension(
            f"fastconv.{name}",
            [os.path.join("src", f"{name}.pyx")],
            include_dirs=[np.get_include(), "src"],
            define_macros=macros,
            # the C headers a module includes: a change to one rebuilds it
            depends=glob.glob(os.path.join("src", "*.h")),
        )
        for name in EXTENSIONS
    ]
    return cythonize(
        exts,
        include_path=["src"],
        compiler_directives={"language_level": 3},
        quiet=True,
    )


if __name__ == "__main__":
    setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
