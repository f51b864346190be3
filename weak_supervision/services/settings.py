"""Per-project pre-label settings: validated updates (the API key is kept unless replaced)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from labeling.errors import ApplicationError
from labeling.models import Project
from weak_supervision.label_models import METHODS
from weak_supervision.models import WeakSupervisionSettings
from weak_supervision.services.common import ws_settings_for

_FIELDS = {f.name for f in WeakSupervisionSettings._meta.concrete_fields} - {
    "id",
    "project",
    "updated_at",
}


@transaction.atomic
def ws_settings_update(*, project: Project, **changes: Any) -> WeakSupervisionSettings:
    row = ws_settings_for(project=project)
    row = WeakSupervisionSettings.objects.select_for_update().get(pk=row.pk)
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ApplicationError(f"Unknown setting '{sorted(unknown)[0]}'.", {"field": "settings"})
    # An empty key in a form or PATCH means "unchanged": the stored key is never sent back,
    # so clients cannot echo it; clear it with llm_api_key_clear in the UI/admin instead.
    if not changes.get("llm_api_key"):
        changes.pop("llm_api_key", None)
    method = changes.get("label_model_method")
    if method is not None and method not in METHODS:
        raise ApplicationError(f"Unknown label model '{method}'.", {"field": "label_model_method"})
    for name in ("cascade_threshold", "cascade_verify_fraction"):
        value = changes.get(name)
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise ApplicationError(f"{name} must be between 0 and 1.", {"field": name})
    for name, value in changes.items():
        setattr(row, name, value)
    row.save()
    return row
