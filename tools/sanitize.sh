#!/usr/bin/env bash
# Build fastconv's extensions with AddressSanitizer and UBSan in a directory of their
# own (the normal in-place build is left alone) and run the kernel tests against them:
# the compiled-against-reference tests, bad input, the element-wise and image kernels,
# and the hypothesis fuzz of every op on odd shapes (tests/test_kernel_fuzz.py).
#
#   tools/sanitize.sh            # the full set
#   tools/sanitize.sh --quick    # the fixed subset CI runs
#
# SANITIZE_DIR moves the build (default: build/sanitize in the checkout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SANITIZE_DIR:-$root/build/sanitize}
quick=0
[ "${1:-}" = "--quick" ] && quick=1

rm -rf "$build"
mkdir -p "$build"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$build")
cd "$build"
FASTCONV_SANITIZE=1 python setup.py -q build_ext --inplace >"$build/build.log" 2>&1 \
    || { tail -40 "$build/build.log"; exit 1; }

# Python itself is not instrumented: preload the sanitizer runtimes. Leaks are not
# checked (the interpreter keeps memory until exit by design).
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$build"
export FASTCONV_SANITIZED=1

tests=(tests/test_kernel_fuzz.py tests/test_bad_input.py tests/test_elementwise.py
       tests/test_winograd.py tests/test_cs231n_nchw.py)
if [ "$quick" = 0 ]; then
    tests+=(tests/test_cython_backend.py tests/test_depthwise.py tests/test_reference.py
            tests/test_preprocessing.py tests/test_filters.py tests/test_layers.py
            tests/test_reshaping.py tests/test_augmentation.py tests/test_norm_kernels.py
            tests/test_cs231n.py)
fi
python -c "import fastconv, sys; assert fastconv.__file__.startswith('$build'), fastconv.__file__"
python -m pytest -q -p no:cacheprovider "${tests[@]}"
