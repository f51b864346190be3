"""The Celery application. Queue names and the broker come from settings."""

import os

from celery import Celery
from celery.signals import worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("flywheel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _import_the_heavy_modules(**_kwargs) -> None:
    """Import what the first ranking and training need before the first task arrives (prefork
    children inherit it): on a busy 2-core machine these imports took seconds, which the first
    cold-start ranking of a new project paid while its annotator waited."""
    import sklearn.cluster
    import sklearn.linear_model  # noqa: F401
    from modAL import uncertainty  # noqa: F401


@worker_ready.connect
def _resume_unfinished_jobs(**_kwargs) -> None:
    """Embedded mode (filesystem broker): a message a worker had taken is gone once that worker
    dies (the transport cannot deliver it again), so at start the worker queues again every
    unfinished job that no live worker heartbeats: silent for two heartbeats."""
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        return
    from labeling.jobtasks import job_dispatch
    from labeling.services.jobs import jobs_recover

    jobs_recover(dispatch=job_dispatch, stale_seconds=2 * settings.JOB_HEARTBEAT_SECONDS)
