# Row-major GEMM on top of scipy's nogil Fortran BLAS, for float32 and float64.
#
# BLAS is column-major: a row-major (m, n) matrix is a column-major (n, m) one.
# So C = op(A) @ op(B) in row-major is computed as C^T = op(B)^T @ op(A)^T in
# column-major, i.e. by swapping the operands and the dimensions.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm_rm(bint trans_a, bint trans_b,
                         int m, int n, int k,
                         floating alpha,
                         const floating* a, int lda,    # IN  row-major, (m, k) or (k, m) if trans_a
                         const floating* b, int ldb,    # IN  row-major, (k, n) or (n, k) if trans_b
                         floating beta,
                         floating* c, int ldc           # IN/OUT row-major (m, n)
                         ) noexcept nogil:
    """Row-major C = alpha * op(A) @ op(B) + beta * C (leading dims in elements)."""
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)
