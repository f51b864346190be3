"""Per-project quality settings (created lazily)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from labeling.errors import ApplicationError
from labeling.models import Project
from quality.models import AggregationMethod, QualitySettings

_EDITABLE = {"aggregation_method", "adjudication_threshold", "adjudicate_ties", "show_overruled"}


def quality_settings_get(*, project: Project) -> QualitySettings:
    row, _ = QualitySettings.objects.get_or_create(project=project)
    return row


@transaction.atomic
def quality_settings_update(*, project: Project, **changes: Any) -> QualitySettings:
    """Change settings; a change of method, threshold or tie handling re-aggregates."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise ApplicationError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    if "aggregation_method" in changes and changes["aggregation_method"] not in AggregationMethod:
        raise ApplicationError(
            f"Unknown aggregation method {changes['aggregation_method']!r}.",
            {"field": "aggregation_method", "choices": list(AggregationMethod.values)},
        )
    if "adjudication_threshold" in changes:
        value = float(changes["adjudication_threshold"])
        if not 0.0 <= value <= 1.0:
            raise ApplicationError(
                "The adjudication threshold must be between 0 and 1.",
                {"field": "adjudication_threshold"},
            )
        changes["adjudication_threshold"] = value
    row = QualitySettings.objects.select_for_update().get(
        pk=quality_settings_get(project=project).pk
    )
    decisive = {"aggregation_method", "adjudication_threshold", "adjudicate_ties"}
    rerun = any(getattr(row, key) != value for key, value in changes.items() if key in decisive)
    for key, value in changes.items():
        setattr(row, key, value)
    row.save()
    if rerun:
        from quality.services.aggregation import aggregation_request_on_commit

        aggregation_request_on_commit(project=project, delay=0)
    return row
