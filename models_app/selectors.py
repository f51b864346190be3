"""Reads for the model dashboard and API."""

from __future__ import annotations

from collections import Counter

from django.db.models import QuerySet

from labeling.models import Item, Job, Project
from models_app.models import ModelVersion

ML_JOB_KINDS = [Job.Kind.EMBED, Job.Kind.TRAIN, Job.Kind.SCORE, Job.Kind.RANK]


def model_version_list(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).order_by("-number")


def label_distribution(*, project: Project) -> dict[str, int]:
    """Final labels per class (every class of the project, zeros included)."""
    counts: Counter[str] = Counter()
    for labels in Item.objects.filter(project=project, final_labels__isnull=False).values_list(
        "final_labels", flat=True
    ):
        counts.update(labels or [])
    return {label: counts.get(label, 0) for label in project.labels.values_list("value", flat=True)}


def learning_curve(*, project: Project) -> list[dict]:
    """One point per evaluated version, sorted by the number of final labels at training time
    (a later version can have fewer labels, e.g. after raising k cleared some), then by version:
    macro-F1 as the versions table shows it, and for a cross-validated version the spread over
    its folds."""
    points = []
    for v in ModelVersion.objects.filter(project=project).order_by("label_count", "number"):
        m = v.metrics
        if m.get("macro_f1") is None:
            continue
        cv = m.get("evaluation") == "cross_validation"
        points.append(
            {
                "version": v.number,
                "labels": v.label_count,
                "macro_f1": m["macro_f1"],
                "accuracy": m.get("accuracy"),
                "status": v.status,
                "evaluation": m.get("evaluation")
                or ("gold" if v.holdout_source == "gold" else "held_out"),
                "n": m.get("n"),
                "folds": m.get("folds") if cv else None,
                "std": m.get("macro_f1_std") if cv else None,
                "min": m.get("macro_f1_min") if cv else None,
                "max": m.get("macro_f1_max") if cv else None,
            }
        )
    return points


def ml_jobs(*, project: Project, limit: int = 20) -> list[Job]:
    return list(Job.objects.filter(project=project, kind__in=ML_JOB_KINDS)[:limit])


def zero_shot_summary(*, project: Project) -> dict | None:
    """What the Model page says of the zero-shot suggestions: the label-set version, how the
    temperature was set, and how often the suggestion an item had was the final label humans
    gave it (items whose final label no human gave are left out). None without any."""
    from labeling.models import Prediction

    latest = (
        Prediction.objects.filter(project=project, source_kind=Prediction.SourceKind.ZERO_SHOT)
        .order_by("-id")
        .values_list("details", flat=True)
        .first()
    )
    if latest is None:
        return None
    labelled = Item.objects.filter(
        project=project, final_labels__isnull=False, is_gold=False
    ).exclude(final_lineage__machine=True)
    pairs = Prediction.objects.filter(
        project=project,
        source_kind=Prediction.SourceKind.ZERO_SHOT,
        source_version=str(project.label_set_version),
        item__in=labelled,
    ).values_list("labels", "item__final_labels")
    checked = right = 0
    for predicted, final in pairs:
        checked += 1
        right += predicted == final
    return {
        "label_set_version": project.label_set_version,
        "temperature": (latest or {}).get("temperature"),
        "calibrated_on": (latest or {}).get("calibrated_on", 0),
        "checked": checked,
        "right": right,
        "percent": round(100 * right / checked) if checked else None,
    }
