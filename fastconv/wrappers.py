"""scikit-learn estimators around fastconv models, in the manner of Keras 3's wrappers.

With :class:`SKLearnClassifier`, scikit-learn's own tools do the validation the
lecture describes: ``cross_val_score`` with ``KFold`` for k-fold validation,
``GridSearchCV`` and ``RandomizedSearchCV`` for hyperparameter search (learning rate,
batch size, epochs, the model's own arguments such as the number of filters)::

    from sklearn.model_selection import GridSearchCV
    from fastconv.wrappers import SKLearnClassifier

    def make_model(X, y, filters=32):
        model = Sequential([Input(shape=X.shape[1:]), Conv2D(filters, 3, activation="relu"),
                            Flatten(), Dense(len(np.unique(y)), activation="softmax")])
        return model   # compiled by the wrapper unless compiled here

    search = GridSearchCV(SKLearnClassifier(make_model, epochs=3),
                          {"learning_rate": [1e-3, 1e-2],
                           "model_kwargs": [{"filters": 16}, {"filters": 32}]}, cv=3)
    search.fit(x_train, y_train)

scikit-learn is an optional dependency: ``pip install 'fastconv[sklearn]'``. It is
imported when this module is, never by ``import fastconv``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional

import numpy as np

from .backends._args import fail

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError as err:  # the class below raises a clear error when used
    _IMPORT_ERROR: Optional[ImportError] = err
    class BaseEstimator:  # type: ignore[no-redef]
        """Stands in for scikit-learn's so the class below can be defined."""

    class ClassifierMixin:  # type: ignore[no-redef]
        """Stands in for scikit-learn's so the class below can be defined."""
else:
    _IMPORT_ERROR = None

__all__ = ["SKLearnClassifier"]


def _require_sklearn() -> None:
    if _IMPORT_ERROR is not None:
        raise ImportError(
            "fastconv.wrappers needs scikit-learn, which is not installed: "
            "pip install 'fastconv[sklearn]'"
        ) from _IMPORT_ERROR


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class SKLearnClassifier(ClassifierMixin, BaseEstimator):
    """A scikit-learn classifier that builds and trains a fastconv model.

    Parameters
    ----------
    model_fn : callable
        Called as ``model_fn(X, y, **model_kwargs)`` at each ``fit`` (as Keras 3 calls
        its ``model`` argument); returns a :class:`fastconv.models.Sequential`, compiled
        or not. Define it at module level so that the estimator can be pickled and sent
        to worker processes (joblib).
    model_kwargs : dict, optional
        Arguments for ``model_fn`` (searchable: ``{"model_kwargs": [{"filters": 16},
        ...]}``, or one key at a time as ``model_kwargs__filters``).
    epochs : int
        Passed to ``fit``.
    batch_size : int
        Passed to ``fit`` and ``predict``.
    learning_rate : float, optional
        If given, the optimizer's learning rate (overrides the model's own).
    optimizer : str or dict, optional
        'adam', 'sgd', 'rmsprop' or a config dict. None keeps the optimizer the model
        was compiled with, or Adam if it was not compiled.
    loss : str, optional
        None keeps the model's loss, or 'sparse_categorical_crossentropy' if it was not
        compiled. Labels are encoded to fit the loss: integers 0..K-1 for sparse
        losses, one-hot for 'categorical_crossentropy', 0/1 for a binary loss.
    fit_kwargs : dict, optional
        Further arguments for the model's ``fit`` (``validation_split``, ``callbacks``).
    random_state : int, optional
        If given, :func:`fastconv.utils.set_random_seed` is called with it before the
        model is built, so weights, shuffling and dropout are reproducible.
    verbose : int
        Passed to ``fit``.
    warm_start : bool
        If True, a second ``fit`` continues training the model already built.

    Attributes
    ----------
    model_ : Sequential
        The trained model.
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``, sorted; ``predict`` returns these.
    history_ : dict
        ``History.history`` of the last ``fit``.
    n_features_in_ : int
        ``X.shape[1]`` at ``fit``.

    Notes
    -----
    ``X`` keeps its shape when it reaches the model: images as ``(N, H, W, C)`` arrays
    work, and so do flat ``(N, F)`` rows for models starting with ``Dense`` or
    ``Reshape``. scikit-learn's splitters index the first axis only.
    """

    def __init__(self, model_fn: Callable[..., Any], *, model_kwargs: Optional[Dict] = None,
                 epochs: int = 1, batch_size: int = 32, learning_rate: Optional[float] = None,
                 optimizer: Any = None, loss: Optional[str] = None,
                 fit_kwargs: Optional[Dict] = None, random_state: Optional[int] = None,
                 verbose: int = 0, warm_start: bool = False):
        _require_sklearn()
        self.model_fn = model_fn
        self.model_kwargs = model_kwargs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.loss = loss
        self.fit_kwargs = fit_kwargs
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # -- parameters -------------------------------------------------------------------
    def set_params(self, **params: Any) -> "SKLearnClassifier":
        """Set parameters; ``model_kwargs__name=value`` sets one entry of ``model_kwargs``."""
        routed = {k[len("model_kwargs__"):]: params.pop(k) for k in list(params)
                  if k.startswith("model_kwargs__")}
        if routed:
            base = params.pop("model_kwargs", self.model_kwargs)
            # A new dict: clones made from this estimator must not share it.
            params["model_kwargs"] = {**(base or {}), **routed}
        return super().set_params(**params)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # -- building ---------------------------------------------------------------------
    def _check_params(self) -> None:
        if not callable(self.model_fn):
            raise fail("model_fn", "a callable returning a fastconv model", self.model_fn,
                       TypeError)
        for name in ("model_kwargs", "fit_kwargs"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise fail(name, "None or a dict", value, TypeError)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            minimum = 0 if name == "epochs" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < minimum:
                raise fail(name, f"an int >= {minimum}", value)
        lr = self.learning_rate
        if lr is not None and (isinstance(lr, bool) or not isinstance(
                lr, (int, float, np.floating)) or not math.isfinite(lr) or lr <= 0):
            raise fail("learning_rate", "None or a positive number", lr)

    def _build(self, X: np.ndarray, y: np.ndarray):
        from . import optimizers as _optimizers
        from .models import Sequential
        from .utils import set_random_seed

        if self.random_state is not None:
            set_random_seed(self.random_state)
        model = self.model_fn(X, y, **(self.model_kwargs or {}))
        if not isinstance(model, Sequential):
            raise fail("model_fn", "a callable returning a fastconv Sequential model",
                       f"a callable returning {type(model).__name__}", TypeError)
        compiled = getattr(model, "optimizer", None) is not None and getattr(
            model, "loss", None) is not None
        if compiled and self.optimizer is None:
            optimizer = model.optimizer
        else:
            optimizer = _optimizers.get("adam" if self.optimizer is None else self.optimizer)
        if self.learning_rate is not None:
            optimizer.learning_rate = float(self.learning_rate)
        if self.loss is not None:
            loss = self.loss
        elif compiled:
            loss = model.loss
        else:
            loss = "sparse_categorical_crossentropy"
        metrics = list(getattr(model, "_metric_ids", None) or []) if compiled else []
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        return model

    def _targets(self, codes: np.ndarray) -> np.ndarray:
        from . import losses as _losses

        k = len(self.classes_)
        loss = self.model_.loss
        if isinstance(loss, _losses.CategoricalCrossentropy):
            return np.eye(k, dtype=np.float32)[codes]
        if isinstance(loss, _losses.BinaryCrossentropy):
            if k != 2:
                raise ValueError(f"A binary loss needs exactly 2 classes; y has {k}: "
                                 f"{self.classes_.tolist()}")
            return codes.astype(np.float32).reshape(-1, 1)
        return codes

    # -- scikit-learn API -------------------------------------------------------------
    def fit(self, X: Any, y: Any, **kwargs: Any) -> "SKLearnClassifier":
        """Build (unless ``warm_start``) and train the model on ``X`` (N, ...) and ``y`` (N,).

        Extra keyword arguments go to the model's ``fit``, over ``fit_kwargs``.
        """
        self._check_params()
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim < 2:
            raise fail("X", "an array of shape (n_samples, ...) with 2 or more axes",
                       f"an array of shape {X.shape}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise fail("y", "labels of shape (n_samples,)", f"an array of shape {y.shape}")
        if len(X) != len(y):
            raise ValueError(f"`X` and `y` must have the same number of samples. "
                             f"Received: {len(X)} and {len(y)}")
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise fail("y", "labels of at least 2 classes", f"only {classes.tolist()}")
        if self.warm_start and hasattr(self, "model_"):
            if not np.array_equal(classes, self.classes_):
                raise ValueError(f"warm_start=True needs the same classes as before "
                                 f"({self.classes_.tolist()}). Received: {classes.tolist()}")
        else:
            self.classes_ = classes
            self.model_ = self._build(X, y)
        self.n_features_in_ = X.shape[1]
        targets = self._targets(codes.reshape(-1))
        options = {**(self.fit_kwargs or {}), **kwargs}
        history = self.model_.fit(X, targets, epochs=self.epochs, batch_size=self.batch_size,
                                  verbose=self.verbose, **options)
        self.history_ = history.history
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit "
                                 "first.")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (N, n_classes), columns in the order of ``classes_``."""
        self._check_fitted()
        out = np.asarray(self.model_.predict(np.asarray(X), batch_size=self.batch_size,
                                             verbose=0), dtype=np.float64)
        out = out.reshape(len(out), -1)
        from_logits = getattr(self.model_.loss, "from_logits", False)
        if out.shape[1] == 1:
            p = 1 / (1 + np.exp(-out[:, 0])) if from_logits else out[:, 0]
            out = np.stack([1 - p, p], axis=1)
        elif from_logits:
            out = _softmax(out)
        if out.shape[1] != len(self.classes_):
            raise ValueError(f"The model outputs {out.shape[1]} values per sample but y had "
                             f"{len(self.classes_)} classes; make the last layer's units "
                             "equal to the number of classes.")
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, (N,), from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
