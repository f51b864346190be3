"""Validation of label lists against a project's label set (shared by adjudication, gold and
crowd import)."""

from __future__ import annotations

from collections.abc import Sequence

from labeling.errors import ApplicationError
from labeling.models import Project


def project_label_values(*, project: Project) -> list[str]:
    return list(project.labels.order_by("order", "id").values_list("value", flat=True))


def labels_clean(
    *, project: Project, labels: Sequence[str] | str, allowed: Sequence[str], where: str = ""
) -> list[str]:
    """De-duplicated labels in the project's label order; ApplicationError naming `where`."""
    if isinstance(labels, str):
        labels = [labels]
    cleaned = list(dict.fromkeys(str(v).strip() for v in labels if str(v).strip()))
    prefix = f"{where}: " if where else ""
    if not cleaned:
        raise ApplicationError(f"{prefix}choose at least one label.", {"field": "labels"})
    if not project.multi_label and len(cleaned) > 1:
        raise ApplicationError(
            f"{prefix}this project takes exactly one label per item.", {"field": "labels"}
        )
    unknown = [v for v in cleaned if v not in allowed]
    if unknown:
        raise ApplicationError(
            f"{prefix}unknown label(s): {', '.join(unknown)}.",
            {"field": "labels", "unknown": unknown},
        )
    order = {v: i for i, v in enumerate(allowed)}
    return sorted(cleaned, key=order.__getitem__)
