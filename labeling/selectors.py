"""Reads. Permission checks live here too: who may do what in which project."""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection
from django.db.models import QuerySet

from labeling.errors import NotPermitted
from labeling.models import Annotation, Item, Membership, Project, QueueEntry
from labeling.services.db import RowModel

Role = Membership.Role
# What each role may do.
_ROLE_RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.MANAGER: 3}


def manages_every_project(user: AbstractBaseUser) -> bool:
    """Superusers are managers of every project. Everyone else, staff included, has only the
    roles their memberships give: `is_staff` opens the admin (with the permissions granted
    there), not the projects."""
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    """The user's role in the project, or None. Superusers are managers."""
    if not user.is_authenticated or not user.is_active:
        return None
    if manages_every_project(user):
        return Role.MANAGER
    if hasattr(project, "member_role"):  # read with the project by `project_with_role`
        return project.member_role
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


_projects = RowModel(Project)

# The order machine suggestions are shown in (alias `p` for the prediction table): most
# confident first, sources without a confidence last, then newest. Used by both SQL readers of
# suggestions (`labeling.api.selectors.item_suggestions` and the queue's lease statement).
SUGGESTION_ORDER_SQL = "p.confidence IS NULL, p.confidence DESC, p.created_at DESC, p.id DESC"


class PrefetchedProject(NamedTuple):
    """A project (None: no such project) read with its member role by the authentication of
    the request (see `labeling.api.authentication`), kept on the user for this request."""

    project_id: int
    project: Project | None


def project_row_model() -> RowModel:
    return _projects


def project_with_role(*, project_id: int, user: AbstractBaseUser) -> Project | None:
    """The project with the user's membership role read in the same query (None if there is
    no such project); `membership_role` then needs no query of its own. Plain SQL: every API
    request of the annotation loop runs this, and the ORM's compiling of it cost more than the
    database's answering it."""
    if not user.is_authenticated:
        return None
    prefetched = getattr(user, "prefetched_project", None)
    if prefetched is not None and prefetched.project_id == project_id:
        return prefetched.project
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT {_projects.columns("p")},
                       (SELECT m.role FROM {Membership._meta.db_table} m
                         WHERE m.project_id = p.id AND m.user_id = %s)
                  FROM {Project._meta.db_table} p WHERE p.id = %s""",
            [user.pk, project_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    project, (role,) = _projects.instance(row)
    project.member_role = role
    return project


def project_require_role(*, project: Project, user: AbstractBaseUser, role: str) -> str:
    """Raise NotPermitted unless the user has at least `role` in the project; return the role."""
    actual = membership_role(project=project, user=user)
    if actual is None or _ROLE_RANK[actual] < _ROLE_RANK[role]:
        raise NotPermitted(
            f"This needs the {role} role in project '{project.name}'.",
            {"project": project.pk, "required_role": role, "role": actual},
        )
    return actual


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user may see: all for superusers, else those with a membership."""
    if not user.is_authenticated:
        return Project.objects.none()
    if manages_every_project(user):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_progress(*, project: Project, user: AbstractBaseUser | None = None) -> dict[str, int]:
    """Counts for progress bars: items in total, finished, open, and the user's annotations.

    Project-wide counts scan indexes over every item (tens of ms at a million items), so they
    are cached for PROGRESS_CACHE_SECONDS; the user's own count is exact. Open items are the
    queue's entries plus the open gold items (which the queue leaves out): the item table has
    no index on its status."""
    key = f"flywheel:progress:{project.pk}"
    counts = cache.get(key)
    if counts is None:
        total = Item.objects.filter(project=project).count()
        open_ = (
            QueueEntry.objects.filter(project=project).count()
            + Item.objects.filter(project=project, is_gold=True, status=Item.Status.OPEN).count()
        )
        counts = {"total": total, "done": total - open_}
        cache.set(key, counts, settings.PROGRESS_CACHE_SECONDS)
    mine = 0
    if user is not None and user.is_authenticated:
        mine = Annotation.objects.filter(project=project, annotator=user).count()
    return {
        "total": counts["total"],
        "done": counts["done"],
        "open": counts["total"] - counts["done"],
        "mine": mine,
    }


def annotation_list_for_user(*, project: Project, user: AbstractBaseUser):
    """The user's own annotations in a project, newest first (for undo / edit)."""
    return (
        Annotation.objects.filter(project=project, annotator=user)
        .select_related("item")
        .order_by("-created_at", "-id")
    )
