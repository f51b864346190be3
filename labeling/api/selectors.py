"""Reads the API needs beyond `labeling.selectors`: list queries with their filters, and the
project list with the caller's role and progress."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    CharField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)

from labeling.models import Annotation, Item, Job, Label, Membership, Prediction, Project
from labeling.selectors import (
    SUGGESTION_ORDER_SQL,
    manages_every_project,
    project_list_for_user,
    project_progress,
)
from labeling.services.db import RowModel


def project_list_with_progress(*, user: AbstractBaseUser) -> list[Project]:
    """The user's projects, each with `role` (the user's) and `progress` (see
    `project_progress`, whose project-wide counts are cached), labels prefetched."""
    projects = project_list_for_user(user=user)
    if manages_every_project(user):
        role = Value(Membership.Role.MANAGER, output_field=CharField())
    else:
        role = Subquery(
            Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        )
    projects = list(
        projects.annotate(role=role).prefetch_related(
            Prefetch("labels", queryset=Label.objects.order_by("order", "id"))
        )
    )
    for project in projects:
        project.progress = project_progress(project=project, user=user)
    return projects


def item_list(
    *,
    project: Project,
    status: str | None = None,
    search: str | None = None,
    external_id: str | None = None,
) -> QuerySet[Item]:
    items = Item.objects.filter(project=project)
    if status:
        items = items.filter(status=status)
    if external_id:
        items = items.filter(external_id=external_id)
    if search:
        items = items.filter(Q(text__icontains=search) | Q(external_id__icontains=search))
    return items.order_by("-priority", "id")


def annotation_list(
    *,
    project: Project,
    annotator: AbstractBaseUser | None = None,
    item_id: int | None = None,
) -> QuerySet[Annotation]:
    """Annotations in a project, newest first; only `annotator`'s if given."""
    annotations = Annotation.objects.filter(project=project).select_related("annotator")
    if annotator is not None:
        annotations = annotations.filter(annotator=annotator)
    if item_id is not None:
        annotations = annotations.filter(item_id=item_id)
    return annotations.order_by("-created_at", "-id")


def job_list(*, project: Project, kind: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(project=project)
    if kind:
        jobs = jobs.filter(kind=kind)
    return jobs.order_by("-created_at", "-id")


_predictions = RowModel(Prediction)


def item_suggestions(*, item: Item) -> list[Prediction]:
    """Machine suggestions to show next to an item: sources that did not abstain, most
    confident first. Plain SQL: every "next item" of the annotation loop runs it, unless the
    queue already read them with the item (``item.prefetched_suggestions``)."""
    if hasattr(item, "prefetched_suggestions"):
        return item.prefetched_suggestions
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT {_predictions.columns("p")} FROM {Prediction._meta.db_table} p
                 WHERE p.item_id = %s
                 ORDER BY {SUGGESTION_ORDER_SQL}""",
            [item.pk],
        )
        rows = cursor.fetchall()
    predictions = [_predictions.instance(row)[0] for row in rows]
    return [p for p in predictions if p.labels]
