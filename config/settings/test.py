"""Test settings: the same code paths; DATABASE_URL picks PostgreSQL in CI, SQLite otherwise."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env("SECRET_KEY", "test-only-key")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Each test process gets its own media folder unless the caller shares one (e2e tests pass
# FLYWHEEL_DATA_DIR to the worker they start so both sides see the same files).
import os as _os  # noqa: E402
import tempfile as _tempfile  # noqa: E402

if "FLYWHEEL_DATA_DIR" not in _os.environ:
    MEDIA_ROOT = Path(_tempfile.mkdtemp(prefix="flywheel-test-media-"))  # noqa: F405

# Tests read progress right after writing it.
PROGRESS_CACHE_SECONDS = 0

# Without a broker in the environment (the laptop run), tasks that tests enqueue on commit go to
# an in-memory transport and vanish with the process instead of piling up under var/broker.
# CI sets CELERY_BROKER_URL (Redis) and the end-to-end tests' real worker consumes from it; with
# PostgreSQL but no broker set, the end-to-end tests share the filesystem broker with their worker.
if "CELERY_BROKER_URL" not in _os.environ and not DATABASE_URL.startswith("postgres"):  # noqa: F405
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}

# End-to-end tests start workers with FLYWHEEL_TEST_EMBED_DELAY to slow the test embedder down,
# and with FLYWHEEL_TEST_STALL_KINDS to make runs of those job kinds stop in the middle.
CELERY_IMPORTS = [
    module
    for variable, module in (
        ("FLYWHEEL_TEST_EMBED_DELAY", "tests.e2e.slow_embedding"),
        ("FLYWHEEL_TEST_STALL_KINDS", "tests.e2e.stall_jobs"),
    )
    if _os.environ.get(variable)
]
