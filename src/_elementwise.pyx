# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
#
# Directives: the caller passes flat, equally sized, C-contiguous arrays
# (fastconv.backends.cython, fastconv.layers and fastconv.optimizers check this), so
# indices stay in range; chunk sizes are positive.
"""The model layer's kernels besides convolution and pooling, float32/float64.

Element-wise: ReLU, bias (+ReLU), dropout and the optimizers' update rules; row-wise: column sums
(a Dense layer's bias gradient, +ReLU backward), softmax, softmax cross-entropy from
logits, and the argmax hits behind the accuracy metric.

The loops themselves are in ``_ew_inner.h`` (plain C on restrict pointers, so they
vectorise, with an AVX2 copy picked at run time); here they run on fixed chunks of
the arrays in parallel. Chunks never depend on the thread count and every element
is computed on its own, so results are the same for any number of threads.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort

cimport numpy as cnp

cnp.import_array()

cdef extern from "_ew_inner.h" nogil:
    void fc_ew_init()
    void fc_relu_fwd_f32(const float* x, float* out, Py_ssize_t n)
    void fc_relu_fwd_f64(const double* x, double* out, Py_ssize_t n)
    void fc_add_f32(const float* a, const float* b, float* out, Py_ssize_t n)
    void fc_add_f64(const double* a, const double* b, double* out, Py_ssize_t n)
    void fc_add_relu_f32(const float* a, const float* b, float* out, Py_ssize_t n)
    void fc_add_relu_f64(const double* a, const double* b, double* out, Py_ssize_t n)
    void fc_relu_bwd_f32(const float* d, const float* x, float* dx, Py_ssize_t n)
    void fc_relu_bwd_f64(const double* d, const double* x, double* dx, Py_ssize_t n)
    void fc_dropout_fwd_f32(const float* x, float* out, float* keep, Py_ssize_t n,
                            uint32_t start, uint32_t k1, uint32_t k2, uint32_t threshold,
                            float scale)
    void fc_dropout_fwd_f64(const double* x, double* out, double* keep, Py_ssize_t n,
                            uint32_t start, uint32_t k1, uint32_t k2, uint32_t threshold,
                            double scale)
    void fc_dropout_bwd_f32(const float* d, const float* keep, float* dx, Py_ssize_t n)
    void fc_dropout_bwd_f64(const double* d, const double* keep, double* dx, Py_ssize_t n)
    void fc_bias_act_f32(float* z, const float* b, Py_ssize_t rows, Py_ssize_t cols, int relu)
    void fc_bias_act_f64(double* z, const double* b, Py_ssize_t rows, Py_ssize_t cols,
                         int relu)
    void fc_column_sum_f32(const float* d, const float* y, float* dz, float* db,
                          Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    void fc_column_sum_f64(const double* d, const double* y, double* dz, double* db,
                          Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    double fc_softmax_xent_f32(const float* z, const Py_ssize_t* labels, const float* y,
                               float* grad, Py_ssize_t rows, Py_ssize_t k, float m)
    double fc_softmax_xent_f64(const double* z, const Py_ssize_t* labels, const double* y,
                               double* grad, Py_ssize_t rows, Py_ssize_t k, double m)
    void fc_softmax_rows_f32(const float* z, float* out, Py_ssize_t rows, Py_ssize_t k)
    void fc_softmax_rows_f64(const double* z, double* out, Py_ssize_t rows, Py_ssize_t k)
    Py_ssize_t fc_argmax_hits_f32(const float* z, const Py_ssize_t* labels,
                                  Py_ssize_t rows, Py_ssize_t k)
    Py_ssize_t fc_argmax_hits_f64(const double* z, const Py_ssize_t* labels,
                                  Py_ssize_t rows, Py_ssize_t k)
    void fc_opt_f32(int rule, float* p, const float* g, float* s0, float* s1, float* s2,
                    Py_ssize_t n, const float* c, int decay)
    void fc_opt_f64(int rule, double* p, const double* g, double* s0, double* s1,
                    double* s2, Py_ssize_t n, const double* c, int decay)

fc_ew_init()

# Elements per task: large enough to amortise scheduling, small enough to share.
cdef Py_ssize_t CHUNK = 1 << 15


cdef inline int _threads(Py_ssize_t n, int n_threads) noexcept nogil:
    return 1 if n <= CHUNK else n_threads


def relu_forward(const floating[::1] x,    # IN  (n,)
                 floating[::1] out,        # OUT (n,)
                 int n_threads):
    """out = max(x, 0); NaN stays NaN (as np.maximum)."""
    cdef Py_ssize_t n = x.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_relu_fwd_f32(&x[i0], &out[i0], min(CHUNK, n - i0))
        else:
            fc_relu_fwd_f64(&x[i0], &out[i0], min(CHUNK, n - i0))


def add(const floating[::1] a,      # IN  (n,)
        const floating[::1] b,      # IN  (n,)
        floating[::1] out,          # OUT (n,)
        bint relu,
        int n_threads):
    """out = a + b, or max(a + b, 0) with relu (NaN stays NaN)."""
    cdef Py_ssize_t n = a.shape[0], c, i0, m
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        m = min(CHUNK, n - i0)
        if floating is float:
            if relu:
                fc_add_relu_f32(&a[i0], &b[i0], &out[i0], m)
            else:
                fc_add_f32(&a[i0], &b[i0], &out[i0], m)
        else:
            if relu:
                fc_add_relu_f64(&a[i0], &b[i0], &out[i0], m)
            else:
                fc_add_f64(&a[i0], &b[i0], &out[i0], m)


def relu_backward(const floating[::1] dout,  # IN  (n,)
                  const floating[::1] x,     # IN  (n,) the forward input (or output)
                  floating[::1] dx,          # OUT (n,)
                  int n_threads):
    """dx = dout where x > 0, else 0."""
    cdef Py_ssize_t n = x.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_relu_bwd_f32(&dout[i0], &x[i0], &dx[i0], min(CHUNK, n - i0))
        else:
            fc_relu_bwd_f64(&dout[i0], &x[i0], &dx[i0], min(CHUNK, n - i0))


def bias_act(floating[:, ::1] z,          # IN/OUT (rows, cols)
             const floating[::1] b,        # IN     (cols,) or None
             bint relu, int n_threads):
    """z += b (per row), then z = max(z, 0) if ``relu``: a Dense layer's epilogue."""
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1], c, r0, step
    cdef const floating* bp = NULL
    if rows == 0 or cols == 0:
        return
    if b is not None:
        bp = &b[0]
    step = max(1, CHUNK // cols)  # rows per task
    for c in prange((rows + step - 1) // step, nogil=True, schedule="static",
                    num_threads=_threads(rows * cols, n_threads)):
        r0 = c * step
        if floating is float:
            fc_bias_act_f32(&z[r0, 0], bp, min(step, rows - r0), cols, relu)
        else:
            fc_bias_act_f64(&z[r0, 0], bp, min(step, rows - r0), cols, relu)


# Columns per task of column_sum: tasks own whole columns, so each column is summed
# in row order by one thread whatever the thread count.
cdef Py_ssize_t COLS = 64


def column_sum(const floating[:, ::1] d,    # IN  (rows, cols)
               const floating[:, ::1] y,    # IN  (rows, cols) a ReLU's output, or None
               floating[:, ::1] dz,         # OUT (rows, cols) if y is given, else None
               floating[::1] out,           # OUT (cols,)
               int n_threads):
    """Column sums, after a ReLU's backward when ``y`` is given: dz = d where y > 0,
    else 0, and out = dz.sum(axis=0) (d.sum(axis=0) without y). Each column is summed
    row after row, from the first, as np.add.reduce(axis=0) does, so ``out`` has its
    bits. Used for a Dense layer's bias gradient (with its ReLU's backward) and for the
    fixed-order sums of per-group partial weight gradients."""
    cdef Py_ssize_t rows = d.shape[0], cols = d.shape[1], c, j0
    cdef const floating* yp = NULL
    cdef floating* dzp = NULL
    if out.shape[0] != cols or (y is not None and (y.shape[0] != rows or y.shape[1] != cols)) \
            or (y is not None) != (dz is not None) or (
                dz is not None and (dz.shape[0] != rows or dz.shape[1] != cols)):
        raise ValueError("column_sum: y and dz must both be None or both have d's shape, "
                         "and out d's number of columns")
    if cols == 0:
        return
    for c in prange((cols + COLS - 1) // COLS, nogil=True, schedule="static",
                    num_threads=_threads(rows * cols, n_threads)):
        j0 = c * COLS
        if rows > 0 and y is not None:
            yp = &y[0, j0]
            dzp = &dz[0, j0]
        else:
            yp = NULL
            dzp = NULL
        if floating is float:
            fc_column_sum_f32(&d[0, j0] if rows > 0 else NULL, yp, dzp, &out[j0], rows,
                             min(COLS, cols - j0), cols)
        else:
            fc_column_sum_f64(&d[0, j0] if rows > 0 else NULL, yp, dzp, &out[j0], rows,
                             min(COLS, cols - j0), cols)


def softmax_xent(const floating[:, ::1] z,        # IN  (rows, k) logits
                 const Py_ssize_t[::1] labels,    # IN  (rows,) class labels, or None
                 const floating[:, ::1] y,        # IN  (rows, k) targets, or None
                 floating[:, ::1] grad,           # OUT (rows, k) d(loss) / dz
                 Py_ssize_t m):                   # IN  the number of samples averaged over
    """Softmax cross-entropy from logits against integer ``labels`` or target rows
    ``y`` (exactly one of the two); writes the gradient of the mean loss over ``m``
    samples and returns the sum of the rows' losses (a float). One thread: rows are
    few and short. A label outside [0, k) is a ValueError, checked before any row."""
    cdef Py_ssize_t rows = z.shape[0], k = z.shape[1], i
    cdef const Py_ssize_t* lp = NULL
    cdef const floating* yp = NULL
    cdef double total
    if (labels is None) == (y is None):
        raise ValueError("softmax_xent: give exactly one of labels and y")
    if grad.shape[0] != rows or grad.shape[1] != k or m < 1 or (
            labels is not None and labels.shape[0] != rows) or (
            y is not None and (y.shape[0] != rows or y.shape[1] != k)):
        raise ValueError("softmax_xent: grad (and y) must have z's shape, labels one per "
                         "row of z, and m must be >= 1")
    if rows == 0:
        return 0.0
    if k == 0:
        raise ValueError("softmax_xent: z must have at least one class")
    if labels is not None:
        for i in range(rows):
            if labels[i] < 0 or labels[i] >= k:
                raise ValueError(f"`labels` must lie in [0, {k}). Received: {labels[i]} "
                                 f"in row {i}")
        lp = &labels[0]
    else:
        yp = &y[0, 0]
    with nogil:
        if floating is float:
            total = fc_softmax_xent_f32(&z[0, 0], lp, yp, &grad[0, 0], rows, k, <float> m)
        else:
            total = fc_softmax_xent_f64(&z[0, 0], lp, yp, &grad[0, 0], rows, k, <double> m)
    return total


def softmax_rows(const floating[:, ::1] z,   # IN  (rows, k)
                 floating[:, ::1] out,       # OUT (rows, k)
                 int n_threads):
    """out = softmax of each row of z (its max subtracted first; the row's sum
    accumulated in double). Rows are independent, so any thread count gives the
    same bits."""
    cdef Py_ssize_t rows = z.shape[0], k = z.shape[1], c, r0, step
    if out.shape[0] != rows or out.shape[1] != k:
        raise ValueError("softmax_rows: out must have z's shape")
    if rows == 0 or k == 0:
        return
    step = max(1, CHUNK // k)  # rows per task
    for c in prange((rows + step - 1) // step, nogil=True, schedule="static",
                    num_threads=_threads(rows * k, n_threads)):
        r0 = c * step
        if floating is float:
            fc_softmax_rows_f32(&z[r0, 0], &out[r0, 0], min(step, rows - r0), k)
        else:
            fc_softmax_rows_f64(&z[r0, 0], &out[r0, 0], min(step, rows - r0), k)


def argmax_hits(const floating[:, ::1] z,       # IN (rows, k)
                const Py_ssize_t[::1] labels):  # IN (rows,)
    """The number of rows i with argmax(z[i]) == labels[i], argmax as np.argmax
    (the first largest; a NaN is largest). Labels outside [0, k) never match."""
    cdef Py_ssize_t rows = z.shape[0], k = z.shape[1], hits
    if labels.shape[0] != rows:
        raise ValueError("argmax_hits: one label per row of z")
    if rows == 0:
        return 0
    if k == 0:
        raise ValueError("argmax_hits: z must have at least one column")
    with nogil:
        if floating is float:
            hits = fc_argmax_hits_f32(&z[0, 0], &labels[0], rows, k)
        else:
            hits = fc_argmax_hits_f64(&z[0, 0], &labels[0], rows, k)
    return hits


cdef int _check_flat(object a, str what, Py_ssize_t i, int typenum, Py_ssize_t size,
                     bint writable) except -1:
    """Raise unless ``a`` may be read (and written) as ``size`` elements of ``typenum``."""
    cdef cnp.ndarray arr
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"`{what}[{i}]` must be a numpy array. Received: {type(a).__name__}")
    arr = <cnp.ndarray> a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"`{what}[{i}]` must have the dtype of params[0] in native byte "
                        f"order. Received: dtype {arr.dtype}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)) or (
            writable and not cnp.PyArray_ISWRITEABLE(arr)):
        raise ValueError(f"`{what}[{i}]` must be C-contiguous, aligned"
                         f"{' and writable' if writable else ''}")
    if cnp.PyArray_SIZE(arr) != size:
        raise ValueError(f"`{what}[{i}]` must have the size of params[{i}], {size}. "
                         f"Received: size {cnp.PyArray_SIZE(arr)}")
    return 0


# The rules of optimizer_update_many (fc_opt's switch in _ew_inner.h).
OPT_RULES = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3, "amsgrad": 4, "nadam": 5,
             "adamax": 6, "adagrad": 7, "adadelta": 8, "lion": 9, "rmsprop": 10}
# How many of the slots s0, s1, s2 each rule reads (RMSprop's s1 and s2 may be None).
cdef int[11] _RULE_SLOTS = [0, 1, 1, 2, 3, 2, 2, 1, 2, 1, 3]
# Entries of the coefficient vector c that fc_opt reads.
cdef Py_ssize_t N_COEFFS = 11


def adam_update_many(list params,    # IN/OUT k arrays, parameters
                     list grads,     # IN     k arrays, gradients (params' sizes)
                     list ms,        # IN/OUT k arrays, first moments
                     list vs,        # IN/OUT k arrays, second moments
                     double one_minus_b1, double one_minus_b2, double eps, double alpha,
                     int n_threads):
    """One Adam step on every ``(params[i], grads[i], ms[i], vs[i])``, in the operation
    order of fastconv.optimizers.Adam: m += (1-b1)*(g-m); v += (1-b2)*(g*g-v);
    p -= (m / (sqrt(v) + eps)) * alpha. :func:`optimizer_update_many` with the rule
    ``'adam'``."""
    _update_many(3, params, grads, [ms, vs, None], ("ms", "vs", ""),
                 (one_minus_b1, one_minus_b2, eps, alpha), False, n_threads)


def optimizer_update_many(str rule,     # a key of OPT_RULES
                          list params,  # IN/OUT k arrays, parameters
                          list grads,   # IN     k arrays, gradients (params' sizes)
                          list slots,   # IN/OUT up to 3 lists of k arrays (or None)
                          tuple coeffs,  # the rule's coefficients (see _ew_inner.h)
                          bint decay,   # weight decay first: p -= p*coeffs[6]*coeffs[7]
                          int n_threads):
    """One optimizer step on every ``params[i]``, all in one parallel region (an
    optimizer step is one call, not one per weight array), in the operation order of
    the rule's NumPy version in :mod:`fastconv.optimizers`, so with the same bits.

    ``slots[j][i]`` is the j-th state array of ``params[i]`` (moments, accumulators);
    the rule reads the first 0-3 of them (RMSprop's second and third may be None:
    not centered, no momentum). Every array is checked before any is changed: one
    dtype (float32 or float64, that of ``params[0]``) throughout, C-contiguous,
    aligned, the sizes of ``params``, params and slots writable, and none of these
    overlapping any other array (the same array passed twice, a view of another);
    otherwise TypeError or ValueError and nothing is updated. The work is cut into
    fixed chunks of each array, so the result does not depend on the thread count.
    """
    if rule not in OPT_RULES:
        raise ValueError(f"`rule` must be one of {sorted(OPT_RULES)}. Received: {rule!r}")
    if len(slots) > 3:
        raise ValueError(f"`slots` must hold at most 3 lists. Received: {len(slots)}")
    slots = list(slots) + [None] * (3 - len(slots))
    _update_many(OPT_RULES[rule], params, grads, slots, ("slots[0]", "slots[1]", "slots[2]"),
                 coeffs, decay, n_threads)


# Pointers per array in the task tables: p, g, s0, s1, s2.
cdef enum:
    NPTR = 5


cdef _update_many(int rule, list params, list grads, list slots, tuple names, tuple coeffs,
                  bint decay, int n_threads):
    cdef Py_ssize_t k = len(params), i, j, t, n_tasks = 0, total = 0, n, off
    cdef int typenum, used = _RULE_SLOTS[rule]
    cdef char** ptr = NULL
    cdef Py_ssize_t* sizes = NULL
    cdef Py_ssize_t* task_array = NULL
    cdef Py_ssize_t* task_offset = NULL
    cdef double[11] c
    cdef float[11] c32
    if len(coeffs) > N_COEFFS:
        raise ValueError(f"`coeffs` must hold at most {N_COEFFS} numbers. Received: "
                         f"{len(coeffs)}")
    for j in range(N_COEFFS):
        c[j] = float(coeffs[j]) if j < len(coeffs) else 0.0
        c32[j] = <float> c[j]
    for j in range(3):
        if j < used and slots[j] is None and not (rule == 10 and j > 0):
            raise ValueError(f"`{names[j]}` must be a list of arrays for this rule. "
                             "Received: None")
        if slots[j] is not None and len(slots[j]) != k:
            raise ValueError(f"`params`, `grads` and `{names[j]}` must have the same "
                             f"length. Received: {k}, {len(grads)}, {len(slots[j])}")
    if len(grads) != k:
        raise ValueError(f"`params` and `grads` must have the same length. Received: "
                         f"{k}, {len(grads)}")
    if k == 0:
        return
    if not isinstance(params[0], cnp.ndarray):
        raise TypeError(f"`params[0]` must be a numpy array. Received: "
                        f"{type(params[0]).__name__}")
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> params[0])
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"`params[0]` must be float32 or float64. Received: dtype "
                        f"{params[0].dtype}")
    try:
        ptr = <char**> calloc(NPTR * k, sizeof(char*))
        sizes = <Py_ssize_t*> malloc(k * sizeof(Py_ssize_t))
        if ptr == NULL or sizes == NULL:
            raise MemoryError()
        for i in range(k):
            n = cnp.PyArray_SIZE(<cnp.ndarray> params[i]) if isinstance(
                params[i], cnp.ndarray) else 0
            _check_flat(params[i], "params", i, typenum, n, True)
            _check_flat(grads[i], "grads", i, typenum, n, False)
            sizes[i] = n
            ptr[NPTR * i] = <char*> cnp.PyArray_DATA(<cnp.ndarray> params[i])
            ptr[NPTR * i + 1] = <char*> cnp.PyArray_DATA(<cnp.ndarray> grads[i])
            for j in range(used):
                if slots[j] is not None:
                    _check_flat(slots[j][i], names[j], i, typenum, n, True)
                    ptr[NPTR * i + 2 + j] = <char*> cnp.PyArray_DATA(
                        <cnp.ndarray> slots[j][i])
            n_tasks += (n + CHUNK - 1) // CHUNK
            total += n
        if n_tasks == 0:
            return
        _check_disjoint(ptr, sizes, k, cnp.PyArray_ITEMSIZE(<cnp.ndarray> params[0]),
                        names)
        task_array = <Py_ssize_t*> malloc(n_tasks * sizeof(Py_ssize_t))
        task_offset = <Py_ssize_t*> malloc(n_tasks * sizeof(Py_ssize_t))
        if task_array == NULL or task_offset == NULL:
            raise MemoryError()
        t = 0
        for i in range(k):
            off = 0
            while off < sizes[i]:
                task_array[t] = i
                task_offset[t] = off
                off += CHUNK
                t += 1
        if typenum == cnp.NPY_FLOAT32:
            _opt_tasks(c32, rule, ptr, sizes, task_array, task_offset, n_tasks, decay,
                       _threads(total, n_threads))
        else:
            _opt_tasks(c, rule, ptr, sizes, task_array, task_offset, n_tasks, decay,
                       _threads(total, n_threads))
    finally:
        free(ptr)
        free(sizes)
        free(task_array)
        free(task_offset)


cdef struct _Span:
    size_t lo, hi       # byte addresses [lo, hi)
    int written
    Py_ssize_t slot     # index into ptr: NPTR * array + (0 p, 1 g, 2-4 the slots)


cdef int _span_order(const void* a, const void* b) noexcept nogil:
    cdef size_t x = (<const _Span*> a).lo, y = (<const _Span*> b).lo
    return -1 if x < y else (1 if x > y else 0)


cdef int _check_disjoint(char** ptr, const Py_ssize_t* sizes, Py_ssize_t k,
                         Py_ssize_t itemsize, tuple slot_names) except -1:
    """Raise ValueError if an array written by _update_many overlaps any other array
    it reads or writes: its tasks run in parallel, so an overlap would race.
    (Gradients may overlap each other; they are only read.) Sort by start, then one
    sweep: a span overlaps an earlier one iff it starts before the furthest end so far."""
    cdef _Span* spans = <_Span*> malloc(NPTR * k * sizeof(_Span))
    cdef Py_ssize_t i, j, m = 0
    cdef size_t end_any = 0, end_written = 0
    cdef Py_ssize_t slot_any = -1, slot_written = -1, other
    cdef _Span s
    if spans == NULL:
        raise MemoryError()
    try:
        for i in range(k):
            if sizes[i] == 0:
                continue
            for j in range(NPTR):
                if ptr[NPTR * i + j] == NULL:
                    continue
                spans[m].lo = <size_t> ptr[NPTR * i + j]
                spans[m].hi = spans[m].lo + <size_t> (sizes[i] * itemsize)
                spans[m].written = j != 1
                spans[m].slot = NPTR * i + j
                m += 1
        qsort(spans, m, sizeof(_Span), _span_order)
        for i in range(m):
            s = spans[i]
            other = -1
            if s.lo < end_written:
                other = slot_written
            elif s.written and s.lo < end_any:
                other = slot_any
            if other >= 0:
                names = ("params", "grads") + slot_names
                raise ValueError(
                    f"`{names[s.slot % NPTR]}[{s.slot // NPTR}]` and "
                    f"`{names[other % NPTR]}[{other // NPTR}]` share memory; the arrays "
                    "updated must not overlap any other array")
            if s.hi > end_any:
                end_any, slot_any = s.hi, s.slot
            if s.written and s.hi > end_written:
                end_written, slot_written = s.hi, s.slot
    finally:
        free(spans)
    return 0


cdef void _opt_tasks(floating* c,                 # IN  (N_COEFFS,) coefficients
                     int rule,
                     char** ptr,                  # IN  (NPTR k,) p, g, s0-s2 of each array
                     const Py_ssize_t* sizes,     # IN  (k,)
                     const Py_ssize_t* task_array, const Py_ssize_t* task_offset,
                     Py_ssize_t n_tasks, bint decay, int n_threads) noexcept nogil:
    cdef Py_ssize_t t, i, off, n, j
    for t in prange(n_tasks, schedule="static", num_threads=n_threads):
        i = task_array[t]
        off = task_offset[t]
        n = min(CHUNK, sizes[i] - off)
        if floating is float:
            fc_opt_f32(rule, (<float*> ptr[NPTR * i]) + off,
                       (<float*> ptr[NPTR * i + 1]) + off,
                       _at32(ptr[NPTR * i + 2], off), _at32(ptr[NPTR * i + 3], off),
                       _at32(ptr[NPTR * i + 4], off), n, c, decay)
        else:
            fc_opt_f64(rule, (<double*> ptr[NPTR * i]) + off,
                       (<double*> ptr[NPTR * i + 1]) + off,
                       _at64(ptr[NPTR * i + 2], off), _at64(ptr[NPTR * i + 3], off),
                       _at64(ptr[NPTR * i + 4], off), n, c, decay)


cdef inline float* _at32(char* base, Py_ssize_t off) noexcept nogil:
    return NULL if base == NULL else (<float*> base) + off


cdef inline double* _at64(char* base, Py_ssize_t off) noexcept nogil:
    return NULL if base == NULL else (<double*> base) + off


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finaliser: a bijective hash with good avalanche."""
    z = (z ^ (z >> 30)) * <uint64_t> 0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t> 0x94d049bb133111ebULL
    return z ^ (z >> 31)


def dropout_forward(const floating[::1] x,   # IN  (n,), n < 2**32
                    floating[::1] out,       # OUT (n,)
                    floating[::1] keep,      # OUT (n,) 1 / (1 - rate) where kept, else 0
                    double rate, uint64_t seed, uint64_t step, int n_threads):
    """Inverted dropout with a counter-based generator.

    Call ``step`` of a layer keyed by ``seed`` derives two 32-bit keys from
    hash64(seed, step); element i is kept when the top 24 bits of
    fmix32(fmix32(i ^ k1) + k2), as a fraction of 2**24, are >= rate. The mask
    depends only on (seed, step, i), never on the thread count.
    """
    cdef Py_ssize_t n = x.shape[0], c, i0
    cdef uint64_t key = _mix64(seed ^ _mix64(step + <uint64_t> 0x9e3779b97f4a7c15ULL))
    cdef uint32_t k1 = <uint32_t> key, k2 = <uint32_t> (key >> 32)
    cdef uint32_t threshold = <uint32_t> (rate * 16777216.0 + 0.5)
    cdef double scale = 1.0 / (1.0 - rate)
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_dropout_fwd_f32(&x[i0], &out[i0], &keep[i0], min(CHUNK, n - i0),
                               <uint32_t> i0, k1, k2, threshold, <float> scale)
        else:
            fc_dropout_fwd_f64(&x[i0], &out[i0], &keep[i0], min(CHUNK, n - i0),
                               <uint32_t> i0, k1, k2, threshold, scale)


def dropout_backward(const floating[::1] dout,   # IN  (n,)
                     const floating[::1] keep,   # IN  (n,) from dropout_forward
                     floating[::1] dx,           # OUT (n,)
                     int n_threads):
    """dx = dout * keep where kept (keep = 1 / (1 - rate)), else 0."""
    cdef Py_ssize_t n = dout.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_dropout_bwd_f32(&dout[i0], &keep[i0], &dx[i0], min(CHUNK, n - i0))
        else:
            fc_dropout_bwd_f64(&dout[i0], &keep[i0], &dx[i0], min(CHUNK, n - i0))
