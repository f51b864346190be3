"""Projects, their label sets and memberships."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F

from labeling.errors import ApplicationError, ConflictError
from labeling.models import Label, Membership, Project
from labeling.services.items import project_overlap_apply, project_overlap_preview

DEFAULT_COLORS = [
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#eeca3b",
]


def _label_rows(project: Project, labels: Sequence[str | dict[str, Any]]) -> list[Label]:
    rows = []
    for order, spec in enumerate(labels):
        spec = {"value": spec} if isinstance(spec, str) else dict(spec)
        value = str(spec.get("value", "")).strip()
        if not value:
            raise ApplicationError(f"Label {order + 1} has no value.", {"field": "labels"})
        default_key = str(order + 1) if order < 9 else ""
        rows.append(
            Label(
                project=project,
                value=value,
                color=spec.get("color") or DEFAULT_COLORS[order % len(DEFAULT_COLORS)],
                shortcut=spec.get("shortcut", default_key) or "",
                description=str(spec.get("description") or "").strip()[:300],
                order=order,
            )
        )
    values = [r.value for r in rows]
    if len(set(values)) != len(values):
        raise ApplicationError("Label values must be unique.", {"field": "labels"})
    keys = [r.shortcut for r in rows if r.shortcut]
    if len(set(keys)) != len(keys):
        raise ApplicationError("Label shortcuts must be unique.", {"field": "labels"})
    return rows


@transaction.atomic
def project_create(
    *,
    name: str,
    labels: Sequence[str | dict[str, Any]],
    created_by: AbstractBaseUser | None = None,
    guidelines: str = "",
    description: str = "",
    multi_label: bool = False,
    annotations_per_item: int = 1,
    lease_seconds: int = 600,
) -> Project:
    if not labels:
        raise ApplicationError("A project needs at least one label.", {"field": "labels"})
    if annotations_per_item < 1:
        raise ApplicationError("annotations_per_item must be at least 1.")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name,
                description=description,
                guidelines=guidelines,
                multi_label=multi_label,
                annotations_per_item=annotations_per_item,
                lease_seconds=lease_seconds,
                created_by=created_by,
            )
    except IntegrityError as exc:
        raise ApplicationError(
            f"A project named '{name}' already exists.", {"field": "name"}
        ) from exc
    Label.objects.bulk_create(_label_rows(project, labels))
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Membership.Role.MANAGER)
    return project


def membership_set(
    *, project: Project, users: Iterable[AbstractBaseUser], role: str = Membership.Role.ANNOTATOR
) -> int:
    """Add users to a project with a role (or change their role). Returns how many rows."""
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role '{role}'.", {"field": "role"})
    count = 0
    for user in users:
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
        count += 1
    return count


_SETTINGS_FIELDS = (
    "guidelines",
    "description",
    "annotations_per_item",
    "overlap_fraction",
    "gold_rate",
    "lease_seconds",
    "queue_order",
    "show_external_id",
    "label_descriptions",
)


@transaction.atomic
def project_settings_update(*, project: Project, confirm: bool = False, **changes: Any) -> Project:
    """Change a project's queue settings. A change of k or of the overlap share re-applies the
    overlap at once (items re-open or close); nothing else is touched.

    A change of k or the overlap share that would re-open finished items and clear their final
    labels (they rest on fewer answers than the new k) is refused with a ConflictError that
    says how many (`project_overlap_preview`), unless `confirm` is true; nothing is written."""
    unknown = set(changes) - set(_SETTINGS_FIELDS)
    if unknown:
        raise ApplicationError(
            f"Unknown setting(s): {', '.join(sorted(unknown))}.", {"field": sorted(unknown)[0]}
        )
    descriptions = changes.pop("label_descriptions", None)
    if "queue_order" in changes and changes["queue_order"] not in Project.QueueOrder.values:
        raise ApplicationError(
            f"queue_order must be one of {', '.join(Project.QueueOrder.values)}.",
            {"field": "queue_order"},
        )
    checks = {
        "annotations_per_item": lambda v: int(v) >= 1,
        "overlap_fraction": lambda v: 0 <= float(v) <= 1,
        "gold_rate": lambda v: 0 <= float(v) <= 1,
        "lease_seconds": lambda v: int(v) >= 1,
    }
    for field, value in changes.items():
        if field in checks and not checks[field](value):
            raise ApplicationError(f"{field} is out of range: {value!r}.", {"field": field})
    changed = [f for f, v in changes.items() if getattr(project, f) != v]
    overlap_fields = [f for f in ("annotations_per_item", "overlap_fraction") if f in changed]
    if overlap_fields and not confirm:
        preview = project_overlap_preview(
            project=project,
            annotations_per_item=changes.get("annotations_per_item"),
            overlap_fraction=changes.get("overlap_fraction"),
        )
        if preview.clears_labels:
            raise ConflictError(
                f"Changing {' and '.join(overlap_fields)} would clear final labels: "
                f"{preview.describe()} Send confirm: true to apply it.",
                {
                    "field": overlap_fields[0],
                    "fields": overlap_fields,
                    "items_reopened": preview.reopened,
                    "items_closed": preview.closed,
                    "final_labels_cleared": preview.final_labels_cleared,
                    "confirm_required": True,
                },
            )
    for field in changed:
        setattr(project, field, changes[field])
    if changed:
        project.save(update_fields=[*changed, "updated_at"])
    if {"annotations_per_item", "overlap_fraction"} & set(changed):
        project_overlap_apply(project=project)
    if descriptions is not None:
        label_descriptions_update(project=project, descriptions=descriptions)
    return project


@transaction.atomic
def label_descriptions_update(*, project: Project, descriptions: dict[str, str]) -> int:
    """Set the one-line description of some labels. A change bumps the project's label-set
    version (the lineage of zero-shot suggestions) and, while no model ranks the queue,
    recomputes the zero-shot suggestions (a ranking job). Returns how many labels changed."""
    labels = {label.value: label for label in project.labels.all()}
    unknown = sorted(set(descriptions) - set(labels))
    if unknown:
        raise ApplicationError(
            f"Unknown label(s): {', '.join(unknown)}.", {"field": "label_descriptions"}
        )
    changed = []
    for value, description in descriptions.items():
        description = " ".join(str(description).split())[:300]
        if labels[value].description != description:
            labels[value].description = description
            changed.append(labels[value])
    if not changed:
        return 0
    Label.objects.bulk_update(changed, ["description"])
    label_set_version_bump(project=project)
    return len(changed)


def label_set_version_bump(*, project: Project) -> int:
    """The label set changed (a value or a description, however it was edited): bump its
    version, the lineage of zero-shot suggestions, and have them recomputed. Returns it."""
    from labeling.services.hooks import after_label_set_changed

    Project.objects.filter(pk=project.pk).update(label_set_version=F("label_set_version") + 1)
    project.refresh_from_db(fields=["label_set_version"])
    after_label_set_changed(project=project)
    return project.label_set_version
