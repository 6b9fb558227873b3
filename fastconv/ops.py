"""The kernel API, dispatched to the active backend (see :mod:`fastconv.backends`).

Forward functions run on the active backend; backward functions run on the backend
that made the cache, so switching backends between a forward and its backward pass
is safe. Signatures and documentation: :mod:`fastconv.backends.numpy`.
"""

from __future__ import annotations

from .backends import _args, active_module, get_module

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_relu_forward",
    "conv2d_relu_backward",
    "conv2d_relu_maxpool_forward",
    "conv2d_relu_maxpool_backward",
    "depthwise_conv2d_forward",
    "depthwise_conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "relu_forward",
    "relu_backward",
    "add_relu_forward",
    "add",
    "matmul",
    "resize2d_forward",
    "resize2d_backward",
    "channel_sums",
    "channel_affine",
    "layernorm_forward",
    "layernorm_backward",
]


def _cache_module(cache, op):
    if not isinstance(cache, _args.Cache):
        raise _args.fail("cache", f"the cache returned by {op}_forward",
                         type(cache).__name__, TypeError)
    return get_module(cache.backend)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution, NHWC; see :func:`fastconv.backends.numpy.conv2d_forward`."""
    return active_module().conv2d_forward(x, w, b, stride, padding, dilation)


def conv2d_backward(dout, cache, input_grad=True):
    """``(dx, dw, db)``; see :func:`fastconv.backends.numpy.conv2d_backward`."""
    return _cache_module(cache, "conv2d").conv2d_backward(dout, cache, input_grad)


def conv2d_relu_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """``ReLU(conv2d(x, w) + b)``, fused in the compiled backend; see the reference."""
    return active_module().conv2d_relu_forward(x, w, b, stride, padding, dilation)


def conv2d_relu_backward(dout, cache, input_grad=True):
    """``(dx, dw, db)`` of :func:`conv2d_relu_forward`."""
    return _cache_module(cache, "conv2d_relu").conv2d_relu_backward(dout, cache, input_grad)


def conv2d_relu_maxpool_forward(x, w, b=None, stride=1, padding=0, dilation=1, pool_size=2):
    """``maxpool2d(ReLU(conv2d(x, w) + b))``, fused in the compiled backend; see the
    reference :func:`fastconv.backends.numpy.conv2d_relu_maxpool_forward`."""
    return active_module().conv2d_relu_maxpool_forward(x, w, b, stride, padding, dilation,
                                                       pool_size)


def conv2d_relu_maxpool_backward(dout, cache, input_grad=True):
    """``(dx, dw, db)`` of :func:`conv2d_relu_maxpool_forward`."""
    return _cache_module(cache, "conv2d_relu_maxpool").conv2d_relu_maxpool_backward(
        dout, cache, input_grad)


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """Depthwise 2-D convolution, NHWC, w (KH, KW, C, M); see
    :func:`fastconv.backends.numpy.depthwise_conv2d_forward`."""
    return active_module().depthwise_conv2d_forward(x, w, b, stride, padding, dilation)


def depthwise_conv2d_backward(dout, cache, input_grad=True):
    """``(dx, dw, db)``; see :func:`fastconv.backends.numpy.depthwise_conv2d_backward`."""
    return _cache_module(cache, "depthwise_conv2d").depthwise_conv2d_backward(
        dout, cache, input_grad)


def maxpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """2-D max pooling; see :func:`fastconv.backends.numpy.maxpool2d_forward`."""
    return active_module().maxpool2d_forward(x, pool_size, strides, padding)


def maxpool2d_backward(dout, cache):
    """``dx``; see :func:`fastconv.backends.numpy.maxpool2d_backward`."""
    return _cache_module(cache, "maxpool2d").maxpool2d_backward(dout, cache)


def avgpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """2-D average pooling; see :func:`fastconv.backends.numpy.avgpool2d_forward`."""
    return active_module().avgpool2d_forward(x, pool_size, strides, padding)


def avgpool2d_backward(dout, cache):
    """``dx``; see :func:`fastconv.backends.numpy.avgpool2d_backward`."""
    return _cache_module(cache, "avgpool2d").avgpool2d_backward(dout, cache)


def relu_forward(x):
    """ReLU; see :func:`fastconv.backends.numpy.relu_forward`."""
    return active_module().relu_forward(x)


def relu_backward(dout, cache):
    """``dx``; see :func:`fastconv.backends.numpy.relu_backward`."""
    return _cache_module(cache, "relu").relu_backward(dout, cache)


def add(a, b):
    """``a + b`` of two arrays of one shape; see :func:`fastconv.backends.numpy.add`."""
    return active_module().add(a, b)


def add_relu_forward(a, b):
    """``(max(a + b, 0), cache)``, the cache :func:`relu_backward`'s; see
    :func:`fastconv.backends.numpy.add_relu_forward`."""
    return active_module().add_relu_forward(a, b)


def matmul(a, b, out=None):
    """``a @ b``; see :func:`fastconv.backends.numpy.matmul`."""
    return active_module().matmul(a, b, out)


def resize2d_forward(x, size, interpolation="bilinear"):
    """Resize images to ``size``; see :func:`fastconv.backends.numpy.resize2d_forward`."""
    return active_module().resize2d_forward(x, size, interpolation)


def resize2d_backward(dout, cache):
    """``dx``; see :func:`fastconv.backends.numpy.resize2d_backward`."""
    return _cache_module(cache, "resize2d").resize2d_backward(dout, cache)


def channel_sums(u, v=None, shift=None, gate=None):
    """Per-channel sums over rows of u (A, R, B), in float64; see
    :func:`fastconv.backends.numpy.channel_sums`."""
    return active_module().channel_sums(u, v, shift, gate)


def channel_affine(u, p, r, v=None, q=None, relu=False, gate=None):
    """``p * u + q * v + r`` per channel of u (A, R, B) (then a ReLU, with ``relu``);
    see :func:`fastconv.backends.numpy.channel_affine`."""
    return active_module().channel_affine(u, p, r, v, q, relu, gate)


def layernorm_forward(x, gamma=None, beta=None, epsilon=1e-3):
    """Layer normalisation of the rows of x (M, C): ``(out, mean, inv)``; see
    :func:`fastconv.backends.numpy.layernorm_forward`."""
    return active_module().layernorm_forward(x, gamma, beta, epsilon)


def layernorm_backward(dout, x, mean, inv, gamma=None):
    """``(dx, dgamma, dbeta)`` of :func:`layernorm_forward`; see
    :func:`fastconv.backends.numpy.layernorm_backward`."""
    return active_module().layernorm_backward(dout, x, mean, inv, gamma)
