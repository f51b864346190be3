import pytest


@pytest.fixture(autouse=True)
def _hashing_embedder(settings):
    """Tests embed with the cheap deterministic embedder unless they ask for the real model."""
    settings.EMBEDDING_MODEL = "hashing"
