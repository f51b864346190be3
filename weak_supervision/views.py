"""The pre-label dashboard page. Thin: check membership, read through the selectors, render.
Every write goes through the REST API from the page's JavaScript (static/weak_supervision/)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import get_script_prefix

from labeling.models import Job, Membership, Project
from labeling.selectors import membership_role
from weak_supervision import selectors
from weak_supervision.label_models import METHODS
from weak_supervision.models import LabelingFunction, WeakSupervisionSettings
from weak_supervision.registry import registered_names
from weak_supervision.services.common import load_python_lf_modules, project_labels

Role = Membership.Role
_RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.MANAGER: 3}
PRELABEL_JOB_KINDS = [Job.Kind.LABELING_FUNCTIONS, Job.Kind.LABEL_MODEL, Job.Kind.LLM]


@login_required
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project.")
    if _RANK[role] < _RANK[Role.REVIEWER]:
        raise PermissionDenied("The pre-label dashboard needs the reviewer role.")
    load_python_lf_modules()
    data = selectors.dashboard(project=project)
    is_manager = role == Role.MANAGER
    jobs = (
        list(
            Job.objects.filter(
                Q(kind__in=PRELABEL_JOB_KINDS) | Q(kind=Job.Kind.OTHER, params__action="cascade"),
                project=project,
            ).order_by("-created_at", "-id")[:10]
        )
        if is_manager
        else []
    )
    context = {
        "project": project,
        "role": role,
        "is_manager": is_manager,
        "data": data,
        "jobs": jobs,
        "runs": selectors.cascade_runs(project=project) if is_manager else [],
        "api_root": f"{get_script_prefix()}api/",
        "methods": [
            (m, dict(WeakSupervisionSettings.LabelModelMethod.choices).get(m, m)) for m in METHODS
        ],
        "kinds": LabelingFunction.Kind.choices,
        "labels": project_labels(project=project),
        "python_functions": registered_names(),
        "config": {
            "projectId": project.pk,
            "apiRoot": f"{get_script_prefix()}api/",
            "stages": data["cascade"]["stages"],
        },
    }
    return render(request, "weak_supervision/dashboard.html", context)
