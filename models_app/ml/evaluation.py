"""How a version is evaluated: stratified cross-validation while the project is small, the fixed
held-out set from then on. Pure: arrays in, folds, out-of-fold predictions and metrics out.

A held-out set of a few items per class gives a macro-F1 that jumps by 0.1 or more from one
item to the next, so until the split could hold out `HOLDOUT_MIN_PER_CLASS` human labels of
every class, a version is evaluated by stratified k-fold cross-validation on all human final
labels (k = min(`CV_MAX_FOLDS`, the smallest class's count), at least 2), and reports the mean
macro-F1 over the folds with its spread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models_app.ml.training import (
    TrainingError,
    estimator_fit,
    evaluate_proba,
    predicted_labels,
    probabilities_for,
)

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

HOLDOUT_MIN_PER_CLASS = 10
CV_MAX_FOLDS = 5


def holdout_ready(
    *,
    held_out_labels: Sequence[str],
    human_labels: Sequence[str],
    minimum: int = HOLDOUT_MIN_PER_CLASS,
) -> bool:
    """The held-out set is big enough to be the evaluation: every class that has human labels
    has at least `minimum` of them held out."""
    classes = set(human_labels)
    counts = Counter(held_out_labels)
    return bool(classes) and all(counts[c] >= minimum for c in classes)


def cv_fold_count(labels: Sequence[str], *, max_folds: int = CV_MAX_FOLDS) -> int:
    """k for a stratified k-fold over `labels`: min(max_folds, smallest class count), or 0 when
    no cross-validation is possible (one class, or a class with a single label)."""
    counts = Counter(labels)
    if len(counts) < 2:
        return 0
    k = min(max_folds, min(counts.values()))
    return k if k >= 2 else 0


def stratified_folds(labels: Sequence[str], *, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each item: each class is shuffled with `seed` and dealt round-robin,
    starting where the previous class stopped, so folds differ in size by at most one and every
    class with at least k items is in every fold."""
    labels = np.asarray(labels)
    folds = np.empty(len(labels), dtype=int)
    rng = np.random.default_rng(seed)
    start = 0
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        folds[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return folds


@dataclass(frozen=True)
class FoldPredictions:
    """Out-of-fold predictions of one recipe: for every tested row (`index` into the pool, in
    fold order), its fold, class probabilities (columns in `classes` order) and label."""

    index: np.ndarray
    fold: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray


def fold_predictions(
    *,
    estimator: ClassifierMixin,
    X: np.ndarray,
    y: Sequence[str],
    folds: np.ndarray,
    classes: Sequence[str],
    sample_weight: Sequence[float] | None = None,
    trainable: np.ndarray | None = None,
) -> FoldPredictions:
    """Fit a fresh copy of `estimator` per fold on the rows outside the fold (and `trainable`,
    e.g. the labels an older version was trained on), predict the fold's rows.

    `folds[i]` is row i's fold, or -1 for a row that is never tested (a machine label: trained
    on, never evaluated on). A fold whose training rows hold a single class (possible only with
    `trainable`) predicts that class, which is what that recipe can do with that data."""
    y = np.asarray(y)
    folds = np.asarray(folds)
    classes = list(classes)
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    trainable = np.ones(len(y), dtype=bool) if trainable is None else np.asarray(trainable)
    index, fold_of, probas = [], [], []
    for f in range(int(folds.max()) + 1 if len(folds) else 0):
        test = np.flatnonzero(folds == f)
        if not len(test):
            continue
        train = (folds != f) & trainable
        try:
            model = estimator_fit(
                estimator=estimator,
                X=X[train],
                y=y[train],
                sample_weight=None if weights is None else weights[train],
            )
            proba = probabilities_for(model, X[test], classes)
        except TrainingError:
            pool = y[train] if train.any() else y[folds != f]
            constant = Counter(pool.tolist()).most_common(1)[0][0]
            proba = np.zeros((len(test), len(classes)))
            proba[:, classes.index(constant)] = 1.0
        index.append(test)
        fold_of.append(np.full(len(test), f))
        probas.append(proba)
    proba = np.vstack(probas)
    return FoldPredictions(
        index=np.concatenate(index),
        fold=np.concatenate(fold_of),
        proba=proba,
        predicted=predicted_labels(proba, classes),
    )


def cross_validation_metrics(
    *, predictions: FoldPredictions, y: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """A version's metrics from its out-of-fold predictions: macro-F1 and accuracy are the means
    over the folds, with the spread of macro-F1 across folds (population std, min, max); the
    per-class figures, confusion matrix, log-loss and ECE are over the pooled predictions."""
    y_tested = np.asarray(y)[predictions.index]
    pooled = evaluate_proba(proba=predictions.proba, y=y_tested, classes=classes)
    per_fold = []
    for f in np.unique(predictions.fold):
        mask = predictions.fold == f
        per_fold.append(
            evaluate_proba(proba=predictions.proba[mask], y=y_tested[mask], classes=classes)
        )
    f1s = np.array([m["macro_f1"] for m in per_fold])
    return {
        **pooled,
        "evaluation": "cross_validation",
        "folds": len(per_fold),
        "macro_f1": float(f1s.mean()),
        "accuracy": float(np.mean([m["accuracy"] for m in per_fold])),
        "macro_f1_std": float(f1s.std()),
        "macro_f1_min": float(f1s.min()),
        "macro_f1_max": float(f1s.max()),
        "fold_macro_f1": [float(v) for v in f1s],
    }
