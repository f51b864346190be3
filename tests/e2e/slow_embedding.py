"""Imported by the end-to-end tests' worker processes (CELERY_IMPORTS, see
config/settings/test.py) when FLYWHEEL_TEST_EMBED_DELAY is set: the hashing embedder then takes
that many seconds per text, so a test can watch an embedding job while it runs."""

import os
import time

from models_app.ml import embedding

_DELAY = float(os.environ.get("FLYWHEEL_TEST_EMBED_DELAY") or 0)
_encode = embedding.HashingEmbedder.encode


def _slow_encode(self, texts):
    time.sleep(_DELAY * len(texts))
    return _encode(self, texts)


if _DELAY > 0:
    embedding.HashingEmbedder.encode = _slow_encode
