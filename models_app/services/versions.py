"""Promotion and rollback of model versions (the gate's decision, or an admin's)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Project
from models_app.models import ModelVersion

Status = ModelVersion.Status


@transaction.atomic
def model_version_promote(*, version: ModelVersion, reason: str = "", user=None) -> ModelVersion:
    """Make `version` the project's active model (the previous one becomes retired) and queue
    a re-scoring of the pool with it."""
    from active_learning.services.ranking import ranking_schedule

    # Lock the project's versions so two promotions serialise.
    list(ModelVersion.objects.select_for_update().filter(project_id=version.project_id))
    version.refresh_from_db()
    if version.status == Status.ACTIVE:
        raise ApplicationError(f"Version {version.number} is already active.")
    ModelVersion.objects.filter(project_id=version.project_id, status=Status.ACTIVE).update(
        status=Status.RETIRED
    )
    version.status = Status.ACTIVE
    version.promoted_at = timezone.now()
    fields = ["status", "promoted_at"]
    if user is not None:
        version.reason = f"{version.reason}\nPromoted by hand by {user}. {reason}".strip()
        fields.append("reason")
    version.save(update_fields=fields)
    ranking_schedule(project=version.project, reason=f"v{version.number} promoted")
    return version


@transaction.atomic
def model_version_rollback(*, project: Project, user=None) -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    current = ModelVersion.objects.filter(project=project, status=Status.ACTIVE).first()
    if current is None:
        raise ApplicationError("There is no active model to roll back.")
    previous = (
        ModelVersion.objects.filter(
            project=project,
            promoted_at__isnull=False,
            promoted_at__lt=current.promoted_at,
        )
        .exclude(pk=current.pk)
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise ApplicationError(f"Version {current.number} is the first promoted version.")
    return model_version_promote(
        version=previous, reason=f"Rolled back from v{current.number}.", user=user
    )
