"""Small statistics used by the dashboard: Wilson intervals, per-class accuracy, and the
deterministic per-item coin that picks the verification sample. No Django import."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (95% by default); None without trials."""
    if trials <= 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def per_class_report(pairs: Iterable[tuple[str, str]], labels: Sequence[str]) -> dict:
    """``pairs`` of (predicted, true). Per class: support (true count), predicted count,
    precision, recall, F1; plus overall accuracy and macro-F1. Undefined ratios are None."""
    pairs = list(pairs)
    classes = {
        label: {"support": 0, "predicted": 0, "correct": 0, "precision": None, "recall": None,
                "f1": None}
        for label in labels
    }  # fmt: skip
    correct = 0
    for predicted, true in pairs:
        if true in classes:
            classes[true]["support"] += 1
        if predicted in classes:
            classes[predicted]["predicted"] += 1
        if predicted == true:
            correct += 1
            if true in classes:
                classes[true]["correct"] += 1
    f1s = []
    for row in classes.values():
        if row["predicted"]:
            row["precision"] = row["correct"] / row["predicted"]
        if row["support"]:
            row["recall"] = row["correct"] / row["support"]
        if row["precision"] is not None and row["recall"] is not None:
            total = row["precision"] + row["recall"]
            row["f1"] = 0.0 if total == 0 else 2 * row["precision"] * row["recall"] / total
        if row["support"]:
            f1s.append(row["f1"] or 0.0)
    return {
        "n": len(pairs),
        "accuracy": correct / len(pairs) if pairs else None,
        "macro_f1": sum(f1s) / len(f1s) if f1s else None,
        "classes": classes,
    }


def unit_hash(key: str) -> float:
    """A number in [0, 1) fixed by ``key``: the same item always gets the same coin, so
    re-running the cascade never re-draws who is verified."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
