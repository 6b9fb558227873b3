"""A CS231n-style ThreeLayerConvNet and FullyConnectedNet on fastconv.compat.cs231n.

The networks are written the way the course's assignment 2 writes them (a params
dict, loss(X, y) returning (loss, grads)), over ``from fastconv.compat.cs231n
import *`` instead of the course's layers, and trained with a plain SGD loop on the
Fashion-MNIST sample shipped inside fastconv. Runs in well under a minute.
"""

import numpy as np

from fastconv.compat.cs231n import *  # noqa: F403
from fastconv.datasets import fashion_mnist


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax."""

    def __init__(self, input_dim=(1, 28, 28), num_filters=8, filter_size=3,
                 hidden_dim=64, num_classes=10, weight_scale=1e-1, reg=1e-4):
        C, H, W = input_dim
        rng = np.random.default_rng(0)
        self.reg = reg
        self.params = {
            "W1": weight_scale * rng.standard_normal((num_filters, C, filter_size, filter_size)),
            "b1": np.zeros(num_filters),
            "W2": weight_scale * rng.standard_normal((num_filters * H * W // 4, hidden_dim)),
            "b2": np.zeros(hidden_dim),
            "W3": weight_scale * rng.standard_normal((hidden_dim, num_classes)),
            "b3": np.zeros(num_classes),
        }
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

    def loss(self, X, y=None):
        p = self.params
        a1, c1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param,  # noqa: F405
                                        self.pool_param)
        a2, c2 = affine_relu_forward(a1, p["W2"], p["b2"])  # noqa: F405
        scores, c3 = affine_forward(a2, p["W3"], p["b3"])  # noqa: F405
        if y is None:
            return scores
        loss, d = softmax_loss(scores, y)  # noqa: F405
        grads = {}
        d, grads["W3"], grads["b3"] = affine_backward(d, c3)  # noqa: F405
        d, grads["W2"], grads["b2"] = affine_relu_backward(d, c2)  # noqa: F405
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(d, c1)  # noqa: F405
        for k in ("W1", "W2", "W3"):
            loss += 0.5 * self.reg * np.sum(p[k] ** 2)
            grads[k] += self.reg * p[k]
        return loss, grads


class FullyConnectedNet:
    """{affine - batchnorm - relu - dropout} x (L - 1) - affine - softmax."""

    def __init__(self, hidden_dims, input_dim=784, num_classes=10, dropout_keep_ratio=0.9,
                 weight_scale=5e-2, reg=1e-4, seed=0):
        dims = [input_dim] + list(hidden_dims) + [num_classes]
        rng = np.random.default_rng(seed)
        self.reg, self.num_layers = reg, len(dims) - 1
        self.params = {}
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = weight_scale * rng.standard_normal((dims[i], dims[i + 1]))
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1])
            if i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = np.ones(dims[i + 1])
                self.params[f"beta{i + 1}"] = np.zeros(dims[i + 1])
        self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        self.dropout_param = {"mode": "train", "p": dropout_keep_ratio, "seed": seed}

    def loss(self, X, y=None):
        mode = "test" if y is None else "train"
        self.dropout_param["mode"] = mode
        for bn in self.bn_params:
            bn["mode"] = mode
        p, caches, h = self.params, [], X
        for i in range(1, self.num_layers):
            h, fc = affine_forward(h, p[f"W{i}"], p[f"b{i}"])  # noqa: F405
            h, bc = batchnorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],  # noqa: F405
                                      self.bn_params[i - 1])
            h, rc = relu_forward(h)  # noqa: F405
            h, dc = dropout_forward(h, self.dropout_param)  # noqa: F405
            caches.append((fc, bc, rc, dc))
        L = self.num_layers
        scores, last = affine_forward(h, p[f"W{L}"], p[f"b{L}"])  # noqa: F405
        if y is None:
            return scores
        loss, d = softmax_loss(scores, y)  # noqa: F405
        grads = {}
        d, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(d, last)  # noqa: F405
        for i in range(L - 1, 0, -1):
            fc, bc, rc, dc = caches[i - 1]
            d = relu_backward(dropout_backward(d, dc), rc)  # noqa: F405
            d, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward(d, bc)  # noqa: F405
            d, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(d, fc)  # noqa: F405
        for i in range(1, L + 1):
            loss += 0.5 * self.reg * np.sum(p[f"W{i}"] ** 2)
            grads[f"W{i}"] += self.reg * p[f"W{i}"]
        return loss, grads


def train(model, X, y, X_val, y_val, epochs=3, batch_size=50, lr=5e-2):
    """Plain SGD: params -= lr * grads, one minibatch at a time."""
    rng = np.random.default_rng(1)
    for epoch in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            loss, grads = model.loss(X[idx], y[idx])
            for k, g in grads.items():
                model.params[k] -= lr * g
        acc = np.mean(np.argmax(model.loss(X_val), axis=1) == y_val)
        print(f"  epoch {epoch + 1}: last loss {loss:.3f}, test accuracy {acc:.3f}")


def main():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_sample()
    X = (x_train.astype(np.float64) / 255.0)[:, None]
    Xt = (x_test.astype(np.float64) / 255.0)[:, None]
    y, yt = y_train.astype(np.int64), y_test.astype(np.int64)
    print("ThreeLayerConvNet")
    train(ThreeLayerConvNet(), X, y, Xt, yt)
    print("FullyConnectedNet [100, 100]")
    train(FullyConnectedNet([100, 100]), X.reshape(len(X), -1), y,
          Xt.reshape(len(Xt), -1), yt)


if __name__ == "__main__":
    main()
