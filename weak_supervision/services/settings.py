"""Per-project pre-label settings: validated updates. The LLM endpoint must be one the operator
allows; the project's API key is stored encrypted, bound to its endpoint, kept unless replaced
or cleared, and cleared whenever the endpoint changes."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from labeling.errors import ApplicationError
from labeling.models import Project
from weak_supervision.crypto import seal, unseal
from weak_supervision.label_models import METHODS
from weak_supervision.llm import normalise_base_url
from weak_supervision.models import WeakSupervisionSettings
from weak_supervision.services.common import (
    llm_allowed_endpoints,
    llm_endpoint_of,
    ws_settings_for,
)

_FIELDS = {f.name for f in WeakSupervisionSettings._meta.concrete_fields} - {
    "id",
    "project",
    "updated_at",
    "llm_api_key_sealed",
}


# Sane ranges (the model fields allow far more): a project's requests in flight are threads of
# one worker; prices (USD per million tokens) and the budget are never negative.
_BOUNDS = (
    ("llm_concurrency", 1, 64),
    ("llm_price_input_per_mtok", 0, 10_000),
    ("llm_price_output_per_mtok", 0, 10_000),
    ("llm_budget_usd", 0, 10_000_000),
    ("cascade_min_checks", 1, 1_000_000),
    ("cascade_max_odds_ratio", 1, 1_000_000),
)


def llm_base_url_validate(value: str | None) -> str:
    """The value to store: "" (use LLM_BASE_URL) or the normalised URL of an endpoint the
    operator allows. Anything else is an ApplicationError naming ``llm_base_url``."""
    text = (value or "").strip()
    if not text:
        return ""
    try:
        endpoint = normalise_base_url(text)
    except ValueError as exc:
        raise ApplicationError(f"LLM endpoint: {exc}", {"field": "llm_base_url"}) from None
    if endpoint not in llm_allowed_endpoints():
        raise ApplicationError(
            "This LLM endpoint is not one the operator allows (LLM_BASE_URL or "
            "LLM_ALLOWED_BASE_URLS).",
            {"field": "llm_base_url"},
        )
    return endpoint


def ws_llm_api_key_set(*, row: WeakSupervisionSettings) -> bool:
    """Whether the project has a usable key of its own for its current endpoint."""
    bound = unseal(row.llm_api_key_sealed)
    return bound is not None and bound.endpoint == llm_endpoint_of(row)


@transaction.atomic
def ws_settings_update(
    *,
    project: Project,
    llm_api_key: str | None = None,
    llm_api_key_clear: bool = False,
    **changes: Any,
) -> WeakSupervisionSettings:
    """Apply ``changes`` (model field names). An empty ``llm_api_key`` means "unchanged": the
    stored key is never sent back, so clients cannot echo it; ``llm_api_key_clear`` removes
    it. Nothing is written when any value is refused."""
    row = ws_settings_for(project=project)
    row = WeakSupervisionSettings.objects.select_for_update().get(pk=row.pk)
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ApplicationError(f"Unknown setting '{sorted(unknown)[0]}'.", {"field": "settings"})
    if "llm_base_url" in changes:
        changes["llm_base_url"] = llm_base_url_validate(changes["llm_base_url"])
    method = changes.get("label_model_method")
    if method is not None and method not in METHODS:
        raise ApplicationError(f"Unknown label model '{method}'.", {"field": "label_model_method"})
    for name in ("cascade_threshold", "cascade_verify_fraction", "cascade_min_accuracy"):
        value = changes.get(name)
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise ApplicationError(f"{name} must be between 0 and 1.", {"field": name})
    for name, low, high in _BOUNDS:
        value = changes.get(name)
        if value is not None and not low <= float(value) <= high:
            raise ApplicationError(f"{name} must be between {low} and {high}.", {"field": name})
    old_endpoint = llm_endpoint_of(row)
    for name, value in changes.items():
        setattr(row, name, value)
    new_endpoint = llm_endpoint_of(row)
    if llm_api_key_clear or new_endpoint != old_endpoint:
        # A key belongs to the endpoint it was given for: never carried to another one.
        row.llm_api_key_sealed = ""
    if llm_api_key:
        if new_endpoint is None or new_endpoint not in llm_allowed_endpoints():
            raise ApplicationError(
                "Choose an allowed LLM endpoint before giving its API key.",
                {"field": "llm_base_url"},
            )
        row.llm_api_key_sealed = seal(llm_api_key, endpoint=new_endpoint)
    row.save()
    return row
