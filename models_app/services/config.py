"""Per-project model settings (created lazily) and the embedding model name."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from labeling.models import Project
from models_app.ml.embedding import BACKENDS, HASHING, embedding_key
from models_app.models import ModelSettings


def embedding_model_name() -> str:
    """The key vectors are stored under: the configured model's short name (EMBEDDING_MODEL, or
    the bundled ``all-MiniLM-L6-v2``) plus ``@EMBEDDING_BACKEND`` unless that is ``torch``,
    e.g. ``all-MiniLM-L6-v2@openvino-bf16``. Never an installation path, so the same model on
    the same backend has the same key on every machine; `embedder_load` resolves it back.
    ``hashing`` (the test embedder) is itself."""
    if settings.EMBEDDING_MODEL == HASHING:
        return HASHING
    backend = settings.EMBEDDING_BACKEND
    if backend not in BACKENDS:
        raise ImproperlyConfigured(
            f"EMBEDDING_BACKEND={backend!r}; choose one of {', '.join(BACKENDS)}."
        )
    return embedding_key(model=settings.EMBEDDING_MODEL, backend=backend)


def model_settings_get(*, project: Project) -> ModelSettings:
    model_settings, _ = ModelSettings.objects.get_or_create(project=project)
    return model_settings
