"""What every app's Celery tasks share: the transient errors worth a retry, and a task base
class that records a task's final failure (after its retries) on the Job it ran for, so a
failure is visible in the UI and the admin instead of only in a worker's log."""

from __future__ import annotations

import logging
import re

from celery.contrib.django.task import DjangoTask
from django.db import InterfaceError, OperationalError

from labeling.errors import ApplicationError
from labeling.services.jobs import job_fail

logger = logging.getLogger(__name__)

# Connection drops, server restarts, lock timeouts: worth another try after a pause.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)

MAX_REASON_CHARS = 200
# Absolute paths (POSIX, Windows, file: URLs) and URLs, which name servers or files.
_PATH = re.compile(r"(?:[A-Za-z]+://\S+|[A-Za-z]:\\\S*|(?<![\w.])/[^\s'\",:;)]+)")


def job_failure_text(exc: BaseException) -> str:
    """What a failed job shows every member: a domain error's own message; anything else its
    type and a short one-line reason: the status code for an HTTP error, else the first line of
    the message cut before anything that looks like a response body (``{``, ``<``), with paths
    and URLs replaced, at most MAX_REASON_CHARS. Never a traceback: that goes to the worker log
    (`JobTask.record_failure`)."""
    if isinstance(exc, ApplicationError):
        return exc.message
    name = type(exc).__name__
    status_code = getattr(exc, "status_code", None)
    if isinstance(status_code, int):
        return f"{name}: HTTP {status_code}"
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else ""
    reason = re.split(r"[{<]", reason, maxsplit=1)[0]
    reason = _PATH.sub("<path>", reason).strip(" -:")
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3].rstrip() + "..."
    return f"{name}: {reason}" if reason else name


class JobTask(DjangoTask):
    """Base class of tasks whose first argument (or `job_id` keyword) is a Job's id."""

    def record_failure(self, *, job_id: int, exc: BaseException) -> None:
        logger.error("Job %s failed in %s", job_id, self.name, exc_info=exc)
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
