"""What every app's Celery tasks share: the transient errors worth a retry, and a task base
class that records a task's final failure (after its retries) on the Job it ran for, so a
failure is visible in the UI and the admin instead of only in a worker's log."""

from __future__ import annotations

import traceback

from celery.contrib.django.task import DjangoTask
from django.db import InterfaceError, OperationalError

from labeling.errors import ApplicationError
from labeling.services.jobs import job_fail

# Connection drops, server restarts, lock timeouts: worth another try after a pause.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def job_failure_text(exc: BaseException) -> str:
    """A domain error's own message; anything else with its type and traceback."""
    if isinstance(exc, ApplicationError):
        return exc.message
    trace = "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n\n{trace}"


class JobTask(DjangoTask):
    """Base class of tasks whose first argument (or `job_id` keyword) is a Job's id."""

    def record_failure(self, *, job_id: int, exc: BaseException) -> None:
        job_fail(job_id=job_id, error=job_failure_text(exc))

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            self.record_failure(job_id=job_id, exc=exc)
        super().on_failure(exc, task_id, args, kwargs, einfo)


def job_task_options(
    *, time_limit: int, base: type[JobTask] = JobTask, max_retries: int = 5
) -> dict:
    """The `shared_task` options every job task uses: bound, acknowledged after it finishes
    (tasks are idempotent), re-delivered if the worker dies, a hard time limit with a soft one
    30 s earlier, and retries with jittered exponential backoff on transient database errors."""
    return {
        "bind": True,
        "base": base,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "time_limit": time_limit,
        "soft_time_limit": max(1, time_limit - 30),
        "autoretry_for": TRANSIENT_DB_ERRORS,
        "retry_backoff": 5,
        "retry_backoff_max": 300,
        "retry_jitter": True,
        "max_retries": max_retries,
    }
