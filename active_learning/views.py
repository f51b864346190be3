"""Pages: the project's model dashboard and "find similar". Reviewer and above; the buttons
(retrain now, promote, roll back, embed) are for managers and post to the REST API."""

from __future__ import annotations

import math
from pathlib import PurePath

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import get_script_prefix

from active_learning.models import MinedError
from active_learning.services.mining import item_similar
from active_learning.services.ranking import al_settings_get
from labeling.errors import ApplicationError, NotPermitted
from labeling.job_visibility import job_list_for_viewer
from labeling.models import Item, Membership, Project
from labeling.selectors import membership_role, project_require_role
from models_app.ml.evaluation import HOLDOUT_MIN_PER_CLASS
from models_app.ml.gate import evaluation_summary
from models_app.models import ModelVersion
from models_app.selectors import (
    label_distribution,
    learning_curve,
    ml_jobs,
    model_version_list,
    zero_shot_summary,
)
from models_app.services.config import embedding_model_name, model_settings_get
from models_app.services.embeddings import embeddings_missing_count

Role = Membership.Role


def _reviewer_project(request: HttpRequest, project_id: int) -> tuple[Project, str]:
    project = get_object_or_404(Project, pk=project_id)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project.")
    try:
        project_require_role(project=project, user=request.user, role=Role.REVIEWER)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    return project, role


def embedding_model_label(name: str) -> str:
    """A short name for the page: an installation path (older versions stored the model's
    directory) is shown by its last component; a model key or hub name is shown as it is."""
    if name.startswith(("/", "./", "../", "~")) or "\\" in name:
        return PurePath(name.replace("\\", "/").rstrip("/")).name or name
    return name


def _evaluation_note(*, versions: list[ModelVersion], model_settings) -> str:
    """What the learning curve's latest figures are measured on, in a sentence."""
    latest = next((v for v in versions if v.metrics.get("macro_f1") is not None), None)
    if latest is None:
        return ""
    m = latest.metrics
    if m.get("evaluation") == "cross_validation":
        fraction = model_settings.holdout_fraction
        when = (
            f"once {HOLDOUT_MIN_PER_CLASS} human labels of every class would be held out "
            f"(at {fraction:.0%} held out: {math.ceil(HOLDOUT_MIN_PER_CLASS / fraction)} per "
            "class)"
            if fraction > 0
            else "never (the held-out fraction is 0)"
        )
        return (
            f"Too few labels for a meaningful held-out set: v{latest.number} was evaluated by "
            f"{m['folds']}-fold stratified cross-validation on all {m['n']} human final "
            f"labels (mean macro-F1 over the folds; the bar on its point spans the folds' "
            f"range). A fixed held-out set is used {when}."
        )
    where = "gold items" if m.get("evaluation") == "gold" else "fixed held-out items"
    return f"v{latest.number} was evaluated on {m['n']} {where}, never trained on."


@login_required
def model_dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _reviewer_project(request, project_id)
    versions = list(model_version_list(project=project))
    for v in versions:  # worded as the gate's reasons word it
        v.evaluation_text = evaluation_summary(v.metrics)
    model_settings = model_settings_get(project=project)
    embedding_model = embedding_model_name()
    total_items = Item.objects.filter(project=project).count()
    missing = embeddings_missing_count(project=project)
    context = {
        "project": project,
        "role": role,
        "is_manager": role == Role.MANAGER,
        "versions": versions,
        "active": next((v for v in versions if v.status == ModelVersion.Status.ACTIVE), None),
        "model_settings": model_settings,
        "al_settings": al_settings_get(project=project),
        "embedding_model": embedding_model,
        "embedding_model_label": embedding_model_label(embedding_model),
        "evaluation_note": _evaluation_note(versions=versions, model_settings=model_settings),
        "embedded": total_items - missing,
        "total_items": total_items,
        "mined": MinedError.objects.filter(project=project).select_related("item")[:10],
        "zero_shot": zero_shot_summary(project=project),
        "jobs": job_list_for_viewer(jobs=ml_jobs(project=project), user=request.user, role=role),
        "api_root": f"{get_script_prefix()}api/",
        "chart_data": {
            "curve": learning_curve(project=project),
            "distribution": label_distribution(project=project),
            "colors": dict(project.labels.values_list("value", "color")),
        },
        "config": {"projectId": project.pk, "apiRoot": f"{get_script_prefix()}api/"},
    }
    return render(request, "active_learning/dashboard.html", context)


@login_required
def item_similar_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _reviewer_project(request, project_id)
    query = (request.GET.get("item") or "").strip()
    item, pairs, error = None, [], ""
    if query:
        lookup = {"pk": int(query)} if query.isdigit() else {"external_id": query}
        item = Item.objects.filter(project=project, **lookup).first()
        if item is None and query.isdigit():
            item = Item.objects.filter(project=project, external_id=query).first()
        if item is None:
            error = f"No item '{query}' in this project."
        else:
            try:
                pairs = item_similar(project=project, item=item, k=10)
            except ApplicationError as exc:
                error = exc.message
    context = {
        "project": project,
        "role": role,
        "query": query,
        "item": item,
        "pairs": pairs,
        "error": error,
    }
    return render(request, "active_learning/similar.html", context)
