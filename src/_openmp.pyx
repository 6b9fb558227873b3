"""What the compiled extension was built with: OpenMP or not, and which compiler."""

from _omp cimport FASTCONV_OPENMP, omp_get_max_threads

cdef extern from *:
    """
    #if defined(__clang__)
    #define FASTCONV_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FASTCONV_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FASTCONV_COMPILER "msvc " FASTCONV_STR(_MSC_VER)
    #define FASTCONV_STR(x) FASTCONV_STR2(x)
    #define FASTCONV_STR2(x) #x
    #else
    #define FASTCONV_COMPILER "unknown"
    #endif
    """
    const char* FASTCONV_COMPILER


def openmp_enabled():
    """True when the extension modules were compiled with OpenMP."""
    return bool(FASTCONV_OPENMP)


def openmp_max_threads():
    """OpenMP's default team size (1 without OpenMP)."""
    return omp_get_max_threads()


def compiler():
    """Name and version of the C compiler that built the extension modules."""
    return FASTCONV_COMPILER.decode("ascii", "replace")
