"""Server-rendered pages. Thin: check membership through `labeling.selectors`, read, render.

Every write (submit, skip, undo, edit, import) goes through the REST API from the page's
JavaScript, so the browser and API clients share one code path. Non-members get 404 (a project's
existence is not disclosed); members without the manager role get 403 on manager pages.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import get_script_prefix

from labeling.errors import NotPermitted
from labeling.models import Job, Membership, Project
from labeling.selectors import (
    annotation_list_for_user,
    membership_role,
    project_list_for_user,
    project_progress,
    project_require_role,
)

Role = Membership.Role
_RECENT_JOBS = 10
# How many of the user's latest annotations the labeling page can undo after a reload.
_UNDO_DEPTH = 20
_ANNOTATIONS_PER_PAGE = 50
EXPORT_FORMATS = ("jsonl", "csv", "json")


def _member_project(*, request: HttpRequest, project_id: int) -> tuple[Project, str]:
    project = get_object_or_404(Project, pk=project_id)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project.")
    return project, role


def _manager_project(*, request: HttpRequest, project_id: int) -> Project:
    project, _ = _member_project(request=request, project_id=project_id)
    try:
        project_require_role(project=project, user=request.user, role=Role.MANAGER)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    return project


def _api_root() -> str:
    return f"{get_script_prefix()}api/"


def _labels(project: Project) -> list[dict]:
    return [
        {"value": label.value, "color": label.color, "shortcut": label.shortcut}
        for label in project.labels.all()
    ]


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    rows = [
        {
            "project": project,
            "role": membership_role(project=project, user=request.user),
            "progress": project_progress(project=project, user=request.user),
        }
        for project in project_list_for_user(user=request.user).order_by("name")
    ]
    return render(request, "labeling/project_list.html", {"rows": rows})


@login_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _member_project(request=request, project_id=project_id)
    is_manager = role == Role.MANAGER
    jobs = list(Job.objects.filter(project=project)[:_RECENT_JOBS]) if is_manager else []
    context = {
        "project": project,
        "role": role,
        "is_manager": is_manager,
        "labels": project.labels.all(),
        "progress": project_progress(project=project, user=request.user),
        "jobs": jobs,
        "export_formats": EXPORT_FORMATS,
        "api_root": _api_root(),
    }
    return render(request, "labeling/project_detail.html", context)


@login_required
def label(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _member_project(request=request, project_id=project_id)
    recent = annotation_list_for_user(project=project, user=request.user)[:_UNDO_DEPTH]
    config = {
        "projectId": project.pk,
        "multiLabel": project.multi_label,
        "labels": _labels(project),
        "apiRoot": _api_root(),
        "showExternalId": project.show_external_id,
        # Oldest first: the page pops from the end to undo the latest.
        "history": [
            {"annotationId": a.pk, "itemId": a.item_id, "labels": a.labels}
            for a in reversed(recent)
        ],
    }
    context = {
        "project": project,
        "role": role,
        "labels": project.labels.all(),
        "progress": project_progress(project=project, user=request.user),
        "config": config,
    }
    return render(request, "labeling/label.html", context)


@login_required
def my_annotations(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _member_project(request=request, project_id=project_id)
    paginator = Paginator(
        annotation_list_for_user(project=project, user=request.user), _ANNOTATIONS_PER_PAGE
    )
    page = paginator.get_page(request.GET.get("page"))
    context = {
        "project": project,
        "role": role,
        "labels": project.labels.all(),
        "page": page,
        "config": {
            "multiLabel": project.multi_label,
            "apiRoot": _api_root(),
        },
    }
    return render(request, "labeling/my_annotations.html", context)


@login_required
def import_items(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _manager_project(request=request, project_id=project_id)
    jobs = list(Job.objects.filter(project=project, kind=Job.Kind.IMPORT)[:_RECENT_JOBS])
    context = {
        "project": project,
        "role": Role.MANAGER,
        "jobs": jobs,
        "config": {"projectId": project.pk, "apiRoot": _api_root()},
    }
    return render(request, "labeling/import.html", context)
