"""Celery tasks of the labeling app: thin interfaces that load a job by id and call a service."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from labeling.jobtasks import (
    JobTask,
    job_continue,
    job_dispatch,
    job_send,
    job_task_options,
)
from labeling.models import Job
from labeling.services.imports import ImportSuperseded, import_job_fail, import_run
from labeling.services.jobs import jobs_recover

logger = logging.getLogger(__name__)


class ImportJobTask(JobTask):
    """An import's failure is recorded by the import service (which also removes its files)."""

    def record_failure(self, *, job_id: int, exc: BaseException) -> None:
        import_job_fail(job_id=job_id, exc=exc)


@shared_task(
    name="labeling.import_items",
    **job_task_options(
        time_limit=settings.IMPORT_TASK_TIME_LIMIT, base=ImportJobTask, max_retries=8
    ),
)
def import_items_task(self, job_id: int) -> None:
    """Run (or resume) import job `job_id` for one time slice; queue a continuation if the
    slice ended before the file did. Safe to deliver twice: see `import_run`."""
    deadline = time.monotonic() + settings.IMPORT_TASK_SLICE_SECONDS
    try:
        job = import_run(job_id=job_id, deadline=deadline)
    except Job.DoesNotExist:
        logger.warning("Import job %s no longer exists; nothing to do.", job_id)
        return
    except ImportSuperseded as exc:
        logger.info("%s This run stops.", exc.message)
        return
    if job.status == Job.Status.RUNNING:
        job_continue(import_items_task, job_id=job_id, queue=settings.QUEUE_IMPORT)


def import_items_task_enqueue(*, job_id: int) -> None:
    """Send the task to the import queue (``settings.QUEUE_IMPORT``, read at send time, so
    routing stays a deployment decision). Callers inside a transaction wrap this in
    ``transaction.on_commit``."""
    job_send(import_items_task, job_id=job_id, queue=settings.QUEUE_IMPORT)


def import_job_send(*, job: Job) -> None:
    """Queue an import job again (recovery, restart): an item import or a crowd-label one."""
    if job.params.get("crowd"):
        from quality.tasks import crowd_import_task_enqueue

        crowd_import_task_enqueue(job_id=job.pk)
    else:
        import_items_task_enqueue(job_id=job.pk)


def import_job_restart_check(*, job: Job) -> str | None:
    from pathlib import Path

    from django.core.files.storage import default_storage

    path = job.params.get("path")
    if not path:
        return None
    kept = default_storage.exists(path) if job.params.get("crowd") else Path(path).is_file()
    if not kept:
        return "Its file is no longer kept (the import failed or was removed); import it again."
    return None


@shared_task(name="labeling.jobs_recover", ignore_result=True)
def jobs_recover_task() -> None:
    """Periodic (beat): queue again every job whose worker went silent (embedding jobs have
    their own sweep, which also takes over single chunks)."""
    recovered = jobs_recover(dispatch=job_dispatch, exclude_kinds=(Job.Kind.EMBED,))
    if recovered:
        logger.warning("Queued silent jobs %s again.", recovered)


@shared_task(name="labeling.leases_expire", ignore_result=True)
def leases_expire_task() -> None:
    """Periodic (beat): retire expired leases; see `leases_expire`."""
    from labeling.services.queue import leases_expire

    released = leases_expire()
    if released:
        logger.info("Released %s expired leases.", released)
