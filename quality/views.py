"""Pages of the quality app: the dashboard, the adjudication queue and item page, and an
annotator's overruled answers. Thin: check the role, call a selector or service, render.
Forms post with CSRF to these views, which call the same services as the API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling.errors import ApplicationError, NotPermitted
from labeling.models import Item, Job, Membership, Project
from labeling.selectors import membership_role, project_require_role
from labeling.services.imports import upload_size_check
from quality.models import AggregationMethod
from quality.selectors import (
    adjudication_history,
    adjudication_item_detail,
    adjudication_queue,
    agreement_report,
    overruled_for_user,
)
from quality.services.adjudication import adjudication_decide, adjudication_revoke
from quality.services.aggregation import aggregation_request
from quality.services.gold import gold_file_import
from quality.services.settings import quality_settings_get, quality_settings_update

Role = Membership.Role
_PER_PAGE = 50


def _project_for(request: HttpRequest, project_id: int, role: str) -> tuple[Project, str]:
    project = get_object_or_404(Project, pk=project_id)
    actual = membership_role(project=project, user=request.user)
    if actual is None:
        raise Http404("No such project.")
    try:
        project_require_role(project=project, user=request.user, role=role)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    return project, actual


@login_required
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project.")
    if role == Role.ANNOTATOR:
        return redirect("quality:overruled", project_id=project.pk)
    report = agreement_report(project=project, use_cache=request.GET.get("fresh") != "1")
    chart = {
        "annotators": [row["annotator"] for row in report.get("annotators", [])],
        "consensus": [row["consensus_agreement"]["value"] for row in report.get("annotators", [])],
        "has_consensus": any(
            row["consensus_agreement"]["value"] is not None for row in report.get("annotators", [])
        ),
        "gold": [
            {"annotator": row["annotator"], "points": row["gold_over_time"]}
            for row in report.get("annotators", [])
            if row["gold_over_time"]
        ],
    }
    context = {
        "project": project,
        "role": role,
        "is_manager": role == Role.MANAGER,
        "report": report,
        "chart": chart,
        "settings": quality_settings_get(project=project),
        "methods": AggregationMethod.choices,
        "jobs": list(Job.objects.filter(project=project, kind=Job.Kind.AGGREGATE)[:5]),
        "gold_count": Item.objects.filter(project=project, is_gold=True).count(),
    }
    return render(request, "quality/dashboard.html", context)


@login_required
@require_POST
def settings_update(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = _project_for(request, project_id, Role.MANAGER)
    try:
        quality_settings_update(
            project=project,
            aggregation_method=request.POST.get("aggregation_method", ""),
            adjudication_threshold=float(request.POST.get("adjudication_threshold", "0") or 0),
            adjudicate_ties=request.POST.get("adjudicate_ties") == "on",
            show_overruled=request.POST.get("show_overruled") == "on",
        )
        messages.success(request, "Settings saved; final labels are being re-aggregated.")
    except (ApplicationError, ValueError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("quality:dashboard", project_id=project.pk)


@login_required
@require_POST
def aggregate_now(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = _project_for(request, project_id, Role.MANAGER)
    try:
        job = aggregation_request(project=project, delay=0, user=request.user)
        messages.success(request, f"Aggregation job #{job.pk} queued.")
    except Exception:  # the broker is down: the job says so
        messages.error(request, "The aggregation job could not be queued; see the job list.")
    return redirect("quality:dashboard", project_id=project.pk)


@login_required
@require_POST
def gold_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = _project_for(request, project_id, Role.MANAGER)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a gold file (CSV with external_id,label).")
        return redirect("quality:dashboard", project_id=project.pk)
    try:
        upload_size_check(uploaded_file=upload, setting="QUALITY_MAX_UPLOAD_BYTES")
        marked = gold_file_import(project=project, content=upload.read().decode("utf-8"))
        messages.success(request, f"{marked} items marked as gold.")
    except UnicodeDecodeError:
        messages.error(request, "The gold file is not UTF-8 text.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("quality:dashboard", project_id=project.pk)


@login_required
def adjudication_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _project_for(request, project_id, Role.REVIEWER)
    page = Paginator(adjudication_queue(project=project), _PER_PAGE).get_page(
        request.GET.get("page")
    )
    history = adjudication_history(project=project)[:20]
    return render(
        request,
        "quality/adjudication_list.html",
        {"project": project, "role": role, "page": page, "history": history},
    )


@login_required
def adjudication_item(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project, role = _project_for(request, project_id, Role.REVIEWER)
    item = get_object_or_404(Item, pk=item_id, project=project)
    if request.method == "POST":
        action = request.POST.get("action", "decide")
        try:
            if action == "revoke":
                adjudication_revoke(project=project, item_id=item.pk)
                messages.success(request, "Decision withdrawn; aggregation takes over.")
                return redirect("quality:adjudication_item", project_id=project.pk, item_id=item.pk)
            adjudication_decide(
                project=project,
                item_id=item.pk,
                reviewer=request.user,
                labels=request.POST.getlist("labels"),
                note=request.POST.get("note", ""),
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("quality:adjudication_item", project_id=project.pk, item_id=item.pk)
        messages.success(request, f"Item {item.external_id}: final label saved.")
        following = adjudication_queue(project=project).exclude(pk=item.pk).first()
        if following is not None:
            return redirect(
                "quality:adjudication_item", project_id=project.pk, item_id=following.pk
            )
        return redirect("quality:adjudication_list", project_id=project.pk)
    detail = adjudication_item_detail(project=project, item=item)
    return render(
        request,
        "quality/adjudication_item.html",
        {
            "project": project,
            "role": role,
            "detail": detail,
            "labels": project.labels.all(),
            "queue_url": reverse("quality:adjudication_list", args=[project.pk]),
        },
    )


@login_required
def overruled(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _project_for(request, project_id, Role.ANNOTATOR)
    enabled = quality_settings_get(project=project).show_overruled
    rows = overruled_for_user(project=project, user=request.user) if enabled else []
    page = Paginator(rows, _PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "quality/overruled.html",
        {"project": project, "role": role, "enabled": enabled, "page": page},
    )
