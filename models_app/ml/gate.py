"""Evaluate before promote: the candidate and the active model are compared on the same items,
paired, and the candidate is refused only when it is worse beyond the noise.

Pure: label arrays in, a comparison and a decision out. The statistic is macro-F1 (the mean of
the per-class F1 over the classes present among the true labels); with `groups` (the folds of a
cross-validation) it is the mean over groups of each group's macro-F1, the same figure as the
cross-validated macro-F1 a version reports. Its paired bootstrap resamples items with
replacement within each group, the same resample for both models, so the interval measures how
much the difference could move with other items of the same kind, not how much the two models'
figures would move separately (which is much more, and mostly shared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GATE_METRIC = "macro_f1"
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class PairedComparison:
    """Both models' macro-F1 on the same `n` items, the difference (new - old) and its
    bootstrap interval."""

    n: int
    new: float
    old: float
    difference: float
    low: float
    high: float
    resamples: int
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _macro_f1_from_cells(
    counts: np.ndarray, truth: np.ndarray, predicted: np.ndarray, n_classes: int
) -> np.ndarray:
    """Macro-F1 of each row of `counts` (how many times each distinct (true, predicted) cell
    occurs in one resample): per class F1 = 2 TP / (2 TP + FP + FN), averaged over the classes
    with support in that row (the classes present among the true labels)."""
    counts = np.atleast_2d(counts).astype(np.float64)
    true_onehot = np.eye(n_classes)[truth]  # cells x classes
    pred_onehot = np.eye(n_classes)[predicted]
    support = counts @ true_onehot
    predicted_n = counts @ pred_onehot
    tp = counts @ (true_onehot * pred_onehot)
    denominator = support + predicted_n  # = 2 TP + FP + FN
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    present = support > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def paired_bootstrap(
    *,
    y_true: Sequence[str],
    new_predicted: Sequence[str],
    old_predicted: Sequence[str],
    groups: Sequence[int] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> PairedComparison:
    """Paired bootstrap of the macro-F1 difference (new - old) over the same items.

    Each resample draws every group's items with replacement (a multinomial over the distinct
    (true, new, old) cells, which is the same thing and costs nothing per item); the interval is
    the percentile interval of the resampled differences. Seeded: the same inputs give the same
    interval."""
    y_true = np.asarray(y_true)
    new_predicted = np.asarray(new_predicted)
    old_predicted = np.asarray(old_predicted)
    if not len(y_true) == len(new_predicted) == len(old_predicted) or len(y_true) == 0:
        raise ValueError("Both models need a prediction for each of the same, non-empty items.")
    groups = np.zeros(len(y_true), dtype=int) if groups is None else np.asarray(groups)
    values, codes = np.unique(
        np.concatenate([y_true, new_predicted, old_predicted]).astype(str), return_inverse=True
    )
    k = len(values)
    t, a, b = codes[: len(y_true)], codes[len(y_true) : 2 * len(y_true)], codes[2 * len(y_true) :]
    rng = np.random.default_rng(seed)
    new_sum, old_sum = np.zeros(resamples), np.zeros(resamples)
    new_point = old_point = 0.0
    group_ids = np.unique(groups)
    for g in group_ids:
        mask = groups == g
        cells, counts = np.unique((t[mask] * k + a[mask]) * k + b[mask], return_counts=True)
        ct, ca, cb = cells // (k * k), (cells // k) % k, cells % k
        draws = rng.multinomial(int(mask.sum()), counts / counts.sum(), size=resamples)
        new_sum += _macro_f1_from_cells(draws, ct, ca, k)
        old_sum += _macro_f1_from_cells(draws, ct, cb, k)
        new_point += float(_macro_f1_from_cells(counts, ct, ca, k)[0])
        old_point += float(_macro_f1_from_cells(counts, ct, cb, k)[0])
    m = len(group_ids)
    differences = (new_sum - old_sum) / m
    alpha = (1 - confidence) / 2
    low, high = np.quantile(differences, [alpha, 1 - alpha])
    return PairedComparison(
        n=len(y_true),
        new=new_point / m,
        old=old_point / m,
        difference=(new_point - old_point) / m,
        low=float(low),
        high=float(high),
        resamples=resamples,
        confidence=confidence,
    )


# --- the figures, worded once for the reason, the versions table and the chart -----------------


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def evaluation_summary(metrics: dict[str, Any]) -> str:
    """How a version was evaluated, with its figure: '0.840 ± 0.050 (folds 0.760..0.900),
    5-fold cross-validation on 30 labels' or '0.840 on 40 held-out items'."""
    if metrics.get(GATE_METRIC) is None:
        return "not evaluated"
    value = float(metrics[GATE_METRIC])
    if metrics.get("evaluation") == "cross_validation":
        return (
            f"{value:.3f} ± {metrics['macro_f1_std']:.3f} (folds "
            f"{metrics['macro_f1_min']:.3f}..{metrics['macro_f1_max']:.3f}), "
            f"{metrics['folds']}-fold cross-validation on {metrics['n']} labels"
        )
    where = "gold" if metrics.get("evaluation") == "gold" else "held-out"
    return f"{value:.3f} on {metrics['n']} {where} items"


def comparison_items(comparison: dict[str, Any]) -> str:
    """'the same 40 held-out items' or 'the same 30 labels (5-fold cross-validation, ...)'."""
    n = comparison["n"]
    if comparison.get("evaluation") == "cross_validation":
        return (
            f"the same {n} labels ({comparison['folds']}-fold cross-validation, both re-fit "
            f"per fold; v{comparison['version']} on the labels it was trained on)"
        )
    where = "gold" if comparison.get("evaluation") == "gold" else "held-out"
    text = f"the same {n} {where} items"
    if comparison.get("refit"):
        text += f" (v{comparison['version']} re-fit without them: it had been trained on some)"
    return text


def comparison_summary(comparison: dict[str, Any], *, candidate: int | None = None) -> str:
    """Both models' macro-F1 on the same items, the difference and its interval."""
    name = f"v{candidate}" if candidate is not None else "candidate"
    return (
        f"macro-F1 {name} {comparison['new']:.3f} vs v{comparison['version']} "
        f"{comparison['old']:.3f} on {comparison_items(comparison)}; difference "
        f"{_signed(comparison['difference'])}, {round(comparison['confidence'] * 100)}% "
        f"interval {_signed(comparison['low'])}..{_signed(comparison['high'])}"
    )


def promotion_decision(
    *,
    candidate: dict[str, Any],
    comparison: dict[str, Any] | None,
    tolerance: float,
    active_exists: bool,
    candidate_number: int | None = None,
    metric: str = GATE_METRIC,
) -> GateDecision:
    """Promote unless the candidate is worse than the active model beyond the noise.

    `comparison` is a `PairedComparison.as_dict()` with the active version's `version` (and how
    the items were chosen: `evaluation`, `folds`, `refit`). The candidate is refused only when
    the upper end of the interval of (candidate - active) is below `-tolerance`: it is worse by
    more than the tolerance even in the most favourable reading of these items. A candidate
    slightly worse within the noise is promoted.

    Without any evaluation (too few human labels for a cross-validation, no held-out items) the
    FIRST model is still promoted, marked as not evaluated: there is nothing it could be worse
    than, and until a model is active the queue stays in cold start. A later candidate that
    cannot be evaluated is refused."""
    if metric not in candidate or not candidate.get("n"):
        if not active_exists:
            return GateDecision(
                True,
                "first model, not evaluated yet: too few human labels to cross-validate and no "
                "held-out set; it replaces cold-start ranking",
            )
        return GateDecision(
            False,
            "too few human labels to evaluate it (a cross-validation needs 2 of every class); "
            "the active model stays",
        )
    if not active_exists:
        return GateDecision(True, f"first model: macro-F1 {evaluation_summary(candidate)}")
    if comparison is None:
        return GateDecision(False, "could not compare it with the active model on the same items")
    summary = comparison_summary(comparison, candidate=candidate_number)
    threshold = f"-{tolerance:g}" if tolerance else "0"
    if comparison["high"] < -tolerance:
        return GateDecision(
            False,
            f"worse than the active model beyond the noise: {summary} (rejected because the "
            f"whole interval is below {threshold})",
        )
    return GateDecision(
        True, f"{summary} (refused only if the whole interval were below {threshold})"
    )
