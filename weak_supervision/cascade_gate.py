"""The gate in front of auto-acceptance: may the cascade accept a pre-label source's labels as
final? Pure Python (no Django): the service gathers the counts, this module judges them.

A source is refused when any of these holds:

- **collapsed**: one class's predicted share is far above its prior. Measured as an odds ratio,
  ``odds(predicted share) / odds(prior)``, above ``max_odds_ratio``; odds rather than shares so
  that the test means the same on a balanced and on an imbalanced label set (on SMS spam, 87%
  ham, a model predicting 100% ham is refused; one predicting 82% ham is not). The prior is the
  class distribution of the gold and human labels when there are at least ``min_checks`` of
  them, else uniform. Never the source's own prior: a collapsed model's prior collapses with it
  (classic Dawid-Skene on SMS spam learns P(ham) = 0.9995).
- **low accuracy**: its accuracy on items whose answer is known (gold items' answers, the
  human-checked verification sample, other human final labels), counting only predictions at
  or above the cascade threshold (an estimate of the precision of what it would accept), is
  below ``min_accuracy``: for each kind with at least ``min_checks`` items, and all together.
- **too few checks**: fewer than ``min_checks`` such items in all. This one alone can be lifted
  by a manager's explicit "accept without checks"; the other two cannot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from weak_supervision.metrics import wilson_interval

COLLAPSED = "collapsed"
LOW_ACCURACY = "low_accuracy"
TOO_FEW_CHECKS = "too_few_checks"
# Kinds of known answers, in the order they are reported.
CHECK_KINDS = ("gold", "verification", "human")
_KIND_NAMES = {
    "gold": "gold items",
    "verification": "the verification sample",
    "human": "other human labels",
}


@dataclass(frozen=True)
class GateConfig:
    min_accuracy: float = 0.9
    min_checks: int = 30
    max_odds_ratio: float = 10.0


@dataclass
class Verdict:
    ok: bool
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def overridable(self) -> bool:
        """Refused only for lack of evidence (a manager may accept without checks)."""
        return self.codes == [TOO_FEW_CHECKS]

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "codes": list(self.codes),
            "reasons": list(self.reasons),
            "overridable": self.overridable,
            **self.details,
        }


def _odds(p: float) -> float:
    # Shares and priors here are smoothed, strictly between 0 and 1.
    return p / (1.0 - p)


def class_prior(
    labels: Sequence[str], truth_counts: Mapping[str, int], *, min_checks: int
) -> tuple[list[float], str]:
    """(prior per class, where it comes from): the known answers' class shares with add-one
    smoothing when there are at least ``min_checks`` of them, else uniform."""
    k = len(labels)
    if k == 0:
        return [], "uniform"
    n = sum(int(truth_counts.get(label, 0)) for label in labels)
    if n >= min_checks:
        return [(int(truth_counts.get(label, 0)) + 1) / (n + k) for label in labels], "labels"
    return [1.0 / k] * k, "uniform"


def class_collapse(
    labels: Sequence[str],
    predicted_counts: Mapping[str, int],
    prior: Sequence[float],
    *,
    max_odds_ratio: float,
) -> dict:
    """Predicted share per class (smoothed by half a count, so a class never predicted has a
    finite odds ratio that still grows with the number of predictions) and its odds ratio
    against the prior; ``collapsed`` names the worst class above ``max_odds_ratio``."""
    k = len(labels)
    n = sum(int(predicted_counts.get(label, 0)) for label in labels)
    if k < 2:
        return {"predictions": n, "classes": [], "collapsed": None}
    rows = []
    for label, p in zip(labels, prior, strict=True):
        count = int(predicted_counts.get(label, 0))
        smoothed = (count + 0.5) / (n + 0.5 * k)
        ratio = _odds(smoothed) / _odds(p)
        rows.append(
            {
                "label": label,
                "predicted": count,
                "share": count / n if n else 0.0,
                "prior": p,
                "odds_ratio": ratio,
            }
        )
    worst = max(rows, key=lambda row: row["odds_ratio"]) if rows else None
    collapsed = worst if n and worst["odds_ratio"] > max_odds_ratio else None
    return {"predictions": n, "classes": rows, "collapsed": collapsed}


def _accuracy_row(kind: str, n: int, correct: int) -> dict:
    interval = wilson_interval(correct, n)
    return {
        "kind": kind,
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ratio(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def gate(
    *,
    source: str,
    labels: Sequence[str],
    predicted_counts: Mapping[str, int],
    truth_counts: Mapping[str, int],
    checks: Mapping[str, tuple[int, int]],
    config: GateConfig,
    accept_unverified: bool = False,
) -> Verdict:
    """Judge one source. ``predicted_counts``: its current predictions per class (every item
    it labels); ``truth_counts``: known answers per class (gold and human), for the prior;
    ``checks``: kind -> (items with a known answer and a prediction at or above the threshold,
    how many of those it got right)."""
    codes: list[str] = []
    reasons: list[str] = []
    prior, prior_source = class_prior(labels, truth_counts, min_checks=config.min_checks)
    collapse = class_collapse(labels, predicted_counts, prior, max_odds_ratio=config.max_odds_ratio)
    worst = collapse["collapsed"]
    if worst is not None:
        codes.append(COLLAPSED)
        where = (
            f"its prior of {_pct(worst['prior'])} from {sum(truth_counts.values())} known answers"
            if prior_source == "labels"
            else f"a uniform prior of {_pct(worst['prior'])} (fewer than {config.min_checks} "
            "known answers to measure the prior)"
        )
        reasons.append(
            f"{source} looks degenerate: it predicts '{worst['label']}' for "
            f"{_pct(worst['share'])} of {collapse['predictions']:,} items, against {where}: "
            f"{_ratio(worst['odds_ratio'])} times the prior odds (limit {config.max_odds_ratio:g})."
        )
    rows = [_accuracy_row(kind, *checks.get(kind, (0, 0))) for kind in CHECK_KINDS]
    total_n = sum(row["n"] for row in rows)
    total = _accuracy_row("all", total_n, sum(row["correct"] for row in rows))
    # All kinds together only adds something when more than one kind has checks.
    judged = [*rows, total] if sum(row["n"] > 0 for row in rows) > 1 else rows
    low = [
        row
        for row in judged
        if row["n"] >= config.min_checks and row["accuracy"] < config.min_accuracy
    ]
    if low:
        codes.append(LOW_ACCURACY)
        parts = [
            f"{_pct(row['accuracy'])} on "
            f"{_KIND_NAMES.get(row['kind'], 'all known answers')} ({row['n']} items, 95% "
            f"interval {_pct(row['ci_low'])} to {_pct(row['ci_high'])})"
            for row in low
        ]
        reasons.append(
            f"{source} is not accurate enough where it is confident: "
            f"{'; '.join(parts)}, below the minimum of {_pct(config.min_accuracy)}."
        )
    unverified = total_n < config.min_checks
    if unverified:
        codes.append(TOO_FEW_CHECKS)
        reasons.append(
            f"{source} cannot be checked: only {total_n} gold or human-labelled items carry one "
            f"of its confident predictions (at least {config.min_checks} are needed). Label "
            "more items or add gold items, or run the cascade without checks."
        )
    ok = not codes or (codes == [TOO_FEW_CHECKS] and accept_unverified)
    return Verdict(
        ok=ok,
        codes=codes,
        reasons=reasons,
        details={
            "source": source,
            "prior_source": prior_source,
            "collapse": collapse,
            "accuracy": [*rows, total],
            "unverified": unverified,
            "accept_unverified": bool(accept_unverified and unverified),
            "config": {
                "min_accuracy": config.min_accuracy,
                "min_checks": config.min_checks,
                "max_odds_ratio": config.max_odds_ratio,
            },
        },
    )
