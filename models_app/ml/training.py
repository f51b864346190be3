"""Classifier training and held-out evaluation: arrays in, fitted model and metrics out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

# scikit-learn is imported where it is used: it (with SciPy and pandas) costs a web process
# about 1 s and 100+ MB at start-up, and only workers fit or evaluate models.
if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

DEFAULT_CLASSIFIER = "logistic_regression"


def _logistic_regression(params: dict[str, Any], seed: int) -> ClassifierMixin:
    from sklearn.linear_model import LogisticRegression

    options = {"class_weight": "balanced", "max_iter": 1000, "C": 1.0, **params}
    return LogisticRegression(random_state=seed, **options)


def _linear_svm(params: dict[str, Any], seed: int) -> ClassifierMixin:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    options = {"class_weight": "balanced", "C": 1.0, **params}
    return CalibratedClassifierCV(LinearSVC(random_state=seed, **options), cv=3)


def _random_forest(params: dict[str, Any], seed: int) -> ClassifierMixin:
    from sklearn.ensemble import RandomForestClassifier

    options = {"class_weight": "balanced", "n_estimators": 200, "n_jobs": 1, **params}
    return RandomForestClassifier(random_state=seed, **options)


CLASSIFIERS = {
    DEFAULT_CLASSIFIER: _logistic_regression,
    "linear_svm": _linear_svm,
    "random_forest": _random_forest,
}


class TrainingError(ValueError):
    """The data cannot train a classifier (e.g. a single class)."""


def classifier_make(*, name: str, params: dict[str, Any] | None, seed: int) -> ClassifierMixin:
    if name not in CLASSIFIERS:
        raise TrainingError(f"Unknown classifier '{name}'; choose one of {sorted(CLASSIFIERS)}.")
    return CLASSIFIERS[name](dict(params or {}), seed)


def classifier_fit(
    *,
    X: np.ndarray,
    y: Sequence[str],
    name: str = DEFAULT_CLASSIFIER,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    sample_weight: Sequence[float] | None = None,
) -> ClassifierMixin:
    """Fit a fresh classifier. `y` holds label values; the model's `classes_` are sorted.
    `sample_weight` (one per row, e.g. the label's confidence) is passed to the estimator's
    fit; all ones (or None) is an ordinary fit."""
    return estimator_fit(
        estimator=classifier_make(name=name, params=params, seed=seed),
        X=X,
        y=y,
        sample_weight=sample_weight,
    )


def estimator_fit(
    *,
    estimator: ClassifierMixin,
    X: np.ndarray,
    y: Sequence[str],
    sample_weight: Sequence[float] | None = None,
) -> ClassifierMixin:
    """Fit a fresh copy (`sklearn.base.clone`) of `estimator`: a recipe, possibly taken from a
    fitted model (an older version's artifact), is re-fitted on other data."""
    from sklearn.base import clone

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        raise TrainingError("Training needs at least two classes among the labeled items.")
    model = clone(estimator)
    X = np.asarray(X, dtype=np.float32)
    if sample_weight is None or np.all(np.asarray(sample_weight) == 1.0):
        model.fit(X, y)
    else:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != (len(y),) or np.any(weights < 0):
            raise TrainingError("Sample weights must be one non-negative number per label.")
        model.fit(X, y, sample_weight=weights)
    return model


def probabilities_for(model: ClassifierMixin, X: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Class probabilities in the column order of `classes` (a class the model never saw gets
    probability 0), computed in one pass."""
    proba = model.predict_proba(np.asarray(X, dtype=np.float32))
    out = np.zeros((len(X), len(classes)), dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    for col, cls in enumerate(model.classes_):
        if cls in index:
            out[:, index[cls]] = proba[:, col]
    return out


def expected_calibration_error(proba: np.ndarray, y_index: np.ndarray, *, bins: int = 10) -> float:
    """Top-label ECE: the confidence-weighted gap between confidence and accuracy over `bins`
    equal-width confidence bins."""
    if len(proba) == 0:
        return 0.0
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_index).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def predicted_labels(proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """The predicted label of each row of `proba` (columns in `classes` order): the one label
    rule every evaluation and comparison uses, so their figures agree."""
    return np.asarray(list(classes))[np.asarray(proba).argmax(axis=1)]


def evaluate(
    *, model: ClassifierMixin, X: np.ndarray, y: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, log-loss, ECE and the confusion
    matrix (rows: true, columns: predicted, both in `classes` order) on a held-out set."""
    if len(y) == 0:
        return {"n": 0}
    return evaluate_proba(proba=probabilities_for(model, X, classes), y=y, classes=classes)


def evaluate_proba(
    *, proba: np.ndarray, y: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """`evaluate` from class probabilities already computed (columns in `classes` order)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
    )

    classes = list(classes)
    y = np.asarray(y)
    if len(y) == 0:
        return {"n": 0}
    predicted = predicted_labels(proba, classes)
    index = {c: i for i, c in enumerate(classes)}
    y_index = np.array([index[v] for v in y])
    p, r, f, support = precision_recall_fscore_support(
        y, predicted, labels=classes, zero_division=0
    )
    present = [c for c in classes if c in set(y.tolist())]
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=present, average="macro", zero_division=0)),
        "log_loss": float(log_loss(y_index, clipped, labels=list(range(len(classes))))),
        "ece": expected_calibration_error(proba, y_index),
        "per_class": {
            c: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion": confusion_matrix(y, predicted, labels=classes).tolist(),
        "classes": classes,
    }


def holdout_assign(
    *,
    labels: Sequence[str],
    already_held_out: Sequence[bool],
    eligible: Sequence[bool],
    fraction: float,
    seed: int,
) -> np.ndarray:
    """Grow a fixed, stratified held-out set: returns a boolean mask of items to ADD to it.

    Items already held out stay held out (the set only grows, so nothing once evaluated on is
    ever trained on). Per class, new eligible items are added (in a seeded random order) until
    the class's held-out share reaches `fraction` of its labeled items, rounded down; a class
    keeps at least one training item. Ineligible items (machine labels) are never added."""
    labels = np.asarray(labels)
    held = np.asarray(already_held_out, dtype=bool)
    eligible = np.asarray(eligible, dtype=bool)
    add = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        target = int(np.floor(fraction * len(members)))
        target = min(target, len(members) - 1)
        need = target - int(held[members].sum())
        if need <= 0:
            continue
        candidates = [i for i in members if eligible[i] and not held[i]]
        add[candidates[:need]] = True
    return add
