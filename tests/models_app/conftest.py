import pytest

from tests.models_app.flywheel import no_broker  # noqa: F401


@pytest.fixture(autouse=True)
def _hashing_embedder(settings):
    """Tests embed with the cheap deterministic embedder unless they ask for the real model."""
    settings.EMBEDDING_MODEL = "hashing"
