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
    """One point per evaluated version: labels at training time vs held-out macro-F1."""
    return [
        {
            "version": v.number,
            "labels": v.label_count,
            "macro_f1": v.metrics.get("macro_f1"),
            "accuracy": v.metrics.get("accuracy"),
            "status": v.status,
        }
        for v in ModelVersion.objects.filter(project=project).order_by("number")
        if v.metrics.get("macro_f1") is not None
    ]


def ml_jobs(*, project: Project, limit: int = 20) -> list[Job]:
    return list(Job.objects.filter(project=project, kind__in=ML_JOB_KINDS)[:limit])
