"""SKLearnClassifier through scikit-learn's own validation and search tools."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
)

from fastconv import layers  # noqa: E402
from fastconv.models import Sequential  # noqa: E402
from fastconv.wrappers import SKLearnClassifier  # noqa: E402

NAMES = np.array(["top", "left", "right"])


def blobs(n=90, seed=0):
    """8x8 images with a bright 3x3 square at the top, left or right: labels as strings."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.2, (n, 8, 8, 1)).astype(np.float32)
    codes = np.arange(n) % 3
    rng.shuffle(codes)
    for img, k in zip(x, codes):
        r, c = [(0, 2), (3, 0), (3, 5)][k]
        img[r:r + 3, c:c + 3] += 1.0
    return x, NAMES[codes]


def make_model(X, y, filters=4):
    """Module level, so the estimator pickles."""
    return Sequential([
        layers.Input(shape=X.shape[1:]), layers.Conv2D(filters, 3, activation="relu"),
        layers.Flatten(), layers.Dense(len(np.unique(y)), activation="softmax")])


def make_compiled_lecture_style(X, y):
    model = make_model(X, y)
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def estimator(**kw):
    kw.setdefault("epochs", 8)
    kw.setdefault("learning_rate", 0.02)
    return SKLearnClassifier(make_model, batch_size=16, random_state=0, **kw)


def test_fit_predict_score_and_label_encoding():
    x, y = blobs()
    clf = estimator().fit(x, y)
    assert list(clf.classes_) == sorted(NAMES)
    proba = clf.predict_proba(x)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    pred = clf.predict(x)
    assert pred.dtype == y.dtype and set(pred) <= set(NAMES)
    assert clf.score(x, y) >= 0.9
    assert clf.n_features_in_ == 8 and "loss" in clf.history_


def test_compiled_model_keeps_its_loss_and_gets_one_hot_targets():
    x, y = blobs()
    clf = SKLearnClassifier(make_compiled_lecture_style, epochs=6, learning_rate=0.2,
                            random_state=0).fit(x, y)
    assert type(clf.model_.optimizer).__name__ == "SGD"
    assert clf.model_.optimizer.learning_rate == 0.2
    assert clf.score(x, y) >= 0.9


def test_cross_val_score_with_kfold():
    x, y = blobs()
    scores = cross_val_score(estimator(), x, y, cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,)
    assert scores.min() >= 0.8


def test_grid_search_over_learning_rate_and_model_kwargs():
    x, y = blobs()
    # A learning rate of 1e-6 cannot learn in 8 epochs; the search must prefer 0.02.
    search = GridSearchCV(estimator(), {"learning_rate": [1e-6, 0.02],
                                        "model_kwargs": [{"filters": 2}, {"filters": 4}]},
                          cv=3)
    search.fit(x, y)
    assert search.best_params_["learning_rate"] == 0.02
    assert search.best_score_ >= 0.8
    assert len(search.cv_results_["params"]) == 4
    assert search.score(x, y) >= 0.8


def test_randomized_search_with_routed_model_kwargs():
    x, y = blobs()
    search = RandomizedSearchCV(estimator(), {"model_kwargs__filters": [2, 3, 4],
                                              "batch_size": [8, 16]},
                                n_iter=2, cv=2, random_state=0)
    search.fit(x, y)
    assert search.best_estimator_.model_kwargs["filters"] in (2, 3, 4)


def test_clone_and_pickle():
    x, y = blobs()
    clf = estimator(model_kwargs={"filters": 3})
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    clf.fit(x, y)
    assert not hasattr(clone(clf), "model_")
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(x), clf.predict_proba(x))
    # Routed parameters update a copy of the dict, not the clone's shared one.
    copy.set_params(model_kwargs__filters=5)
    assert copy.model_kwargs == {"filters": 5} and clf.model_kwargs == {"filters": 3}


def test_seeded_fits_are_identical():
    x, y = blobs()
    a = estimator(epochs=2).fit(x, y).predict_proba(x)
    b = estimator(epochs=2).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)


def test_errors():
    from sklearn.exceptions import NotFittedError

    x, y = blobs(30)
    with pytest.raises(NotFittedError):
        estimator().predict(x)
    with pytest.raises(ValueError, match="learning_rate"):
        estimator(learning_rate=-1).fit(x, y)
    with pytest.raises(ValueError, match="epochs"):
        estimator(epochs=-1).fit(x, y)
    with pytest.raises(ValueError, match="same number of samples"):
        estimator().fit(x, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        estimator().fit(x, np.zeros(30))
    with pytest.raises(TypeError, match="model_fn"):
        SKLearnClassifier(lambda X, y: "not a model").fit(x, y)
    with pytest.raises(TypeError, match="model_kwargs"):
        estimator(model_kwargs=[4]).fit(x, y)


def test_clear_error_without_scikit_learn():
    import subprocess
    import sys

    code = ("import sys; sys.modules['sklearn'] = None\n"
            "from fastconv.wrappers import SKLearnClassifier\n"
            "SKLearnClassifier(print)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "pip install 'fastconv[sklearn]'" in done.stderr
