"""Evaluate before promote: a candidate replaces the active model only if it is not worse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GATE_METRIC = "macro_f1"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def promotion_decision(
    *,
    candidate: dict[str, Any],
    active: dict[str, Any] | None,
    tolerance: float,
    metric: str = GATE_METRIC,
    min_holdout: int = 1,
    active_exists: bool | None = None,
) -> GateDecision:
    """Compare the candidate's and the active model's metrics, both measured on the same held-out
    set. Promote when there is no active model, or when the candidate's `metric` is at least the
    active one's minus `tolerance`.

    Without a held-out set (a class needs 1 / holdout_fraction labels before one of them is held
    out) the FIRST model is still promoted, marked as not evaluated: there is nothing it could be
    worse than, and until a model is active the queue stays in cold start. A later candidate
    without a held-out set is refused (`active_exists`, default: `active` is given)."""
    if active_exists is None:
        active_exists = active is not None
    if candidate.get("n", 0) < min_holdout or metric not in candidate:
        if not active_exists:
            return GateDecision(
                True,
                f"first model, not evaluated yet: no held-out set ({candidate.get('n', 0)} "
                "items); it replaces cold-start ranking",
            )
        return GateDecision(
            False,
            f"held-out set too small to evaluate ({candidate.get('n', 0)} items, "
            f"need {min_holdout})",
        )
    if active is None:
        return GateDecision(True, f"first model: {metric} {candidate[metric]:.4f}")
    new, old = float(candidate[metric]), float(active[metric])
    if new + tolerance >= old:
        return GateDecision(
            True, f"{metric} {new:.4f} vs active {old:.4f} (tolerance {tolerance:g})"
        )
    return GateDecision(
        False,
        f"{metric} {new:.4f} is worse than the active model's {old:.4f} by more than "
        f"the tolerance {tolerance:g}",
    )
