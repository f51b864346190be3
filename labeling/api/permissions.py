"""Who may touch which object through the API.

Non-members get 404, exactly as for an object that does not exist, so the API never reveals
which projects (or their items, annotations, jobs) exist. Members whose role is too low get
403 with the role they would need. The rules themselves live in `labeling.selectors`.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from rest_framework.exceptions import NotFound

from labeling.errors import NotPermitted
from labeling.models import Annotation, Assignment, Item, Job, Membership, Project
from labeling.selectors import (
    manages_every_project,
    membership_role,
    project_require_role,
    project_with_role,
)

Role = Membership.Role

# One message for "missing" and "not yours": the two must be indistinguishable.
NOT_FOUND = "Not found."


def _require(*, project: Project, user: AbstractBaseUser, role: str) -> str:
    try:
        return project_require_role(project=project, user=user, role=role)
    except NotPermitted as exc:
        if exc.extra.get("role") is None:  # not a member at all
            raise NotFound(NOT_FOUND) from None
        raise


def project_for_role(*, project_id: int, user: AbstractBaseUser, role: str) -> tuple[Project, str]:
    """The project and the user's role in it, if the user has at least `role`. One query: the
    annotation loop calls this on every request."""
    project = project_with_role(project_id=project_id, user=user)
    if project is None:
        raise NotFound(NOT_FOUND)
    return project, _require(project=project, user=user, role=role)


def item_in_project(*, project: Project, item_id: int) -> Item:
    item = Item.objects.filter(pk=item_id, project=project).first()
    if item is None:
        raise NotFound(NOT_FOUND)
    return item


def item_for_viewer(*, project: Project, role: str, user: AbstractBaseUser, item_id: int) -> Item:
    """Reviewers and managers see every item; an annotator only one they hold a live lease on
    or have annotated (the custom front-end reloading its current item)."""
    item = item_in_project(project=project, item_id=item_id)
    if role != Role.ANNOTATOR:
        return item
    holds_it = (
        Assignment.objects.filter(
            item=item,
            user=user,
            status=Assignment.Status.LEASED,
            expires_at__gt=timezone.now(),
        ).exists()
        or Annotation.objects.filter(item=item, annotator=user).exists()
    )
    if not holds_it:
        raise NotPermitted(
            "Annotators can only open items they are working on or have annotated.",
            {"project": project.pk, "required_role": Role.REVIEWER, "role": role},
        )
    return item


def annotation_for_author(*, annotation_id: int, user: AbstractBaseUser) -> Annotation:
    """An annotation the user wrote, in a project they still belong to."""
    annotation = (
        Annotation.objects.select_related("item__project", "annotator")
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        raise NotFound(NOT_FOUND)
    project = annotation.item.project
    role = _require(project=project, user=user, role=Role.ANNOTATOR)
    if annotation.annotator_id != user.pk:
        raise NotPermitted(
            "You can only change your own annotations.",
            {"project": project.pk, "role": role},
        )
    return annotation


def job_for_member(*, job_id: int, user: AbstractBaseUser) -> Job:
    """A job of a project the user belongs to (any role). Jobs without a project: superusers
    only."""
    job = Job.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        raise NotFound(NOT_FOUND)
    if job.project is None:
        if not manages_every_project(user):
            raise NotFound(NOT_FOUND)
        return job
    if membership_role(project=job.project, user=user) is None:
        raise NotFound(NOT_FOUND)
    return job
