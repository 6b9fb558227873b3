# OpenMP access that still compiles when the build has no OpenMP.
#
# Without _OPENMP the stubs report one thread, and Cython's prange loops
# (which are plain pragmas) compile to serial loops.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTCONV_OPENMP 1
    #else
    #define FASTCONV_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint FASTCONV_OPENMP
    int omp_get_max_threads() nogil
    int omp_get_thread_num() nogil
