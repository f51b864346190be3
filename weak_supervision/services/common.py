"""Shared helpers of the pre-label services: per-project settings, the label set, human labels,
job bookkeeping."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from labeling.models import Item, Job, Project
from weak_supervision.crypto import unseal
from weak_supervision.llm import allowed_endpoints, normalise_base_url
from weak_supervision.models import WeakSupervisionSettings


def ws_settings_for(*, project: Project) -> WeakSupervisionSettings:
    """The project's pre-label settings, created with defaults on first use."""
    row, _ = WeakSupervisionSettings.objects.get_or_create(project=project)
    return row


def project_labels(*, project: Project) -> list[str]:
    return list(project.labels.order_by("order", "id").values_list("value", flat=True))


def human_final_q() -> Q:
    """Items whose final label a human produced (not auto-accepted, not awaiting one)."""
    # Spelled without negation: NOT (lineage->machine = true) is NULL, not true, when the key
    # is missing, and the SQL would then drop exactly the human rows.
    return Q(final_labels__isnull=False) & (
        Q(final_lineage__isnull=True)
        | Q(final_lineage__machine__isnull=True)
        | Q(final_lineage__machine=False)
    )


def human_labels(*, project: Project, item_ids=None) -> dict[int, str]:
    """item id -> first final label, for items with a human final label."""
    items = Item.objects.filter(project=project).filter(human_final_q())
    if item_ids is not None:
        items = items.filter(pk__in=item_ids)
    out = {}
    for item_id, labels in items.values_list("id", "final_labels").iterator(chunk_size=5000):
        if isinstance(labels, list) and labels:
            out[item_id] = labels[0]
    return out


def job_stop(*, job: Job, status: str, message: str, result: dict[str, Any]) -> None:
    """Finish a job that stopped before the end on purpose (budget reached)."""
    Job.objects.filter(pk=job.pk).update(
        status=status, message=message[:500], result=result, finished_at=timezone.now()
    )


@dataclass(frozen=True)
class LLMConfig:
    enabled: bool
    reason: str
    base_url: str
    api_key: str = field(repr=False)
    api_key_source: str  # "project", "global" or "" (none sent)
    model: str
    concurrency: int
    price_input: float
    price_output: float
    budget: float | None


def llm_global_endpoint() -> str:
    """LLM_BASE_URL normalised ("" when unset or unparseable)."""
    try:
        return normalise_base_url(settings.LLM_BASE_URL or "")
    except ValueError:
        return ""


def llm_allowed_endpoints() -> set[str]:
    """What the operator lets a project choose: LLM_BASE_URL and LLM_ALLOWED_BASE_URLS."""
    return allowed_endpoints(settings.LLM_BASE_URL or "", settings.LLM_ALLOWED_BASE_URLS)


def llm_endpoint_of(row: WeakSupervisionSettings) -> str | None:
    """The project's effective endpoint, normalised; None if it does not parse."""
    try:
        return normalise_base_url(row.llm_base_url or settings.LLM_BASE_URL or "")
    except ValueError:
        return None


def llm_config(*, project: Project) -> LLMConfig:
    """The effective LLM configuration: project overrides, else settings. Off until an endpoint
    and a model are known and the project switched it on, and off for an endpoint the operator
    does not allow (however it was stored). The global key goes only to the global endpoint; a
    project key only to the endpoint it was saved for."""
    row = ws_settings_for(project=project)
    endpoint = llm_endpoint_of(row)
    model = row.llm_model or settings.LLM_MODEL or ""
    reason = ""
    if not row.llm_enabled:
        reason = "LLM pre-labels are switched off for this project."
    elif not (row.llm_base_url or settings.LLM_BASE_URL) or not model:
        reason = "No LLM endpoint: set LLM_BASE_URL and LLM_MODEL (or the project's own)."
    elif endpoint is None or endpoint not in llm_allowed_endpoints():
        reason = (
            "The project's LLM endpoint is not one the operator allows "
            "(LLM_BASE_URL, LLM_ALLOWED_BASE_URLS)."
        )
    api_key, source = "", ""
    bound = unseal(row.llm_api_key_sealed)
    if endpoint and bound is not None and bound.endpoint == endpoint:
        api_key, source = bound.secret, "project"
    elif endpoint and endpoint == llm_global_endpoint() and settings.LLM_API_KEY:
        api_key, source = settings.LLM_API_KEY, "global"
    return LLMConfig(
        enabled=not reason,
        reason=reason,
        base_url=endpoint or "",
        api_key=api_key,
        api_key_source=source,
        model=model,
        concurrency=max(1, row.llm_concurrency or settings.LLM_CONCURRENCY),
        price_input=float(
            row.llm_price_input_per_mtok
            if row.llm_price_input_per_mtok is not None
            else settings.LLM_PRICE_INPUT_PER_MTOK
        ),
        price_output=float(
            row.llm_price_output_per_mtok
            if row.llm_price_output_per_mtok is not None
            else settings.LLM_PRICE_OUTPUT_PER_MTOK
        ),
        budget=float(row.llm_budget_usd) if row.llm_budget_usd is not None else None,
    )


def load_python_lf_modules() -> None:
    """Import the modules named in WS_PYTHON_LF_MODULES so their functions register."""
    for name in settings.WS_PYTHON_LF_MODULES:
        importlib.import_module(name)
