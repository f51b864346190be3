"""What every app's Celery tasks share: the transient errors worth a retry; a task base class
that claims the job for its run, heartbeats while it works and records its final failure
(after its retries) on the Job, so a failure is visible in the UI and the admin instead of only
in a worker's log; sending a job's task (a broker outage is a 503 and a failed job, never a
500 and a pending job nobody will run); and how each job kind is queued again (recovery sweep,
a manager's restart)."""

from __future__ import annotations

import importlib
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from labeling.errors import ApplicationError, ServiceUnavailable
from labeling.models import Job
from labeling.services.jobs import (
    JobHeldElsewhere,
    job_fail,
    job_hand_off,
    job_heartbeat,
    job_release,
    job_run_context,
)

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


class _Heartbeat:
    """A thread that moves the job's heartbeat on every JOB_HEARTBEAT_SECONDS while the task
    runs, whatever the task is doing (a long fit, a slow request): the heartbeat says the
    worker is alive, so a job is restarted only when its worker really died."""

    def __init__(self, *, job_id: int, token: str) -> None:
        self.job_id, self.token = job_id, token
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"job-{job_id}-heartbeat")
        self.thread.daemon = True

    def _beat(self) -> None:
        try:
            while not self.stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    job_heartbeat(job_id=self.job_id, token=self.token)
                except Exception:  # a dropped connection: try again next beat
                    logger.warning("Heartbeat of job %s failed", self.job_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


class JobTask(DjangoTask):
    """Base class of tasks whose first argument (or `job_id` keyword) is a Job's id.

    In a worker, each run claims its job (`job_start`, through `job_run_context`), heartbeats
    while it works and lets go when it ends. A run that finds the job held by another live run
    (a message delivered twice) returns at once."""

    def __call__(self, *args, **kwargs):
        job_id = kwargs.get("job_id", args[0] if args else None)
        request = self.request
        if job_id is None or request.is_eager or request.called_directly or not request.id:
            return super().__call__(*args, **kwargs)
        token = request.id
        with job_run_context(token=token), _Heartbeat(job_id=job_id, token=token):
            try:
                return super().__call__(*args, **kwargs)
            except JobHeldElsewhere:
                logger.info("Job %s: another live run holds it; this delivery stops.", job_id)
                return None
            finally:
                job_release(job_id=job_id, token=token)

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


# ---- sending -----------------------------------------------------------------------------------

BROKER_DOWN = (
    "The task queue could not be reached, so the job did not start. Restart it once the "
    "queue is back."
)
_BROKER_ERRORS: tuple[type[BaseException], ...] = (kombu.exceptions.OperationalError, OSError)
try:
    import redis.exceptions

    _BROKER_ERRORS += (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
except ImportError:  # pragma: no cover - redis is a dependency of celery[redis]
    pass


class BrokerUnavailable(ServiceUnavailable):
    pass


def job_send(
    task,
    *,
    job_id: int,
    queue: str,
    countdown: float | None = None,
    task_id: str | None = None,
) -> None:
    """Send `task(job_id)` to `queue`. If the broker cannot be reached, the job fails with a
    clear reason (a manager can restart it; an import keeps its file) and `BrokerUnavailable`
    (503) is raised for the request that asked."""
    try:
        task.apply_async((job_id,), queue=queue, countdown=countdown, task_id=task_id)
    except _BROKER_ERRORS as exc:
        logger.error("Could not queue job %s: broker unreachable (%s)", job_id, exc)
        job_fail(job_id=job_id, error=BROKER_DOWN)
        raise BrokerUnavailable(BROKER_DOWN, {"job": job_id}) from exc


def job_continue(task, *, job_id: int, queue: str) -> None:
    """Queue the next slice of the job this run works on, handing it this run's claim."""
    task_id = uuid.uuid4().hex
    job_hand_off(job_id=job_id, to_token=task_id)
    job_send(task, job_id=job_id, queue=queue, task_id=task_id)


# ---- how each kind runs again ------------------------------------------------------------------


@dataclass(frozen=True)
class JobKindRunner:
    """Where a job kind's sender lives (``module:function`` taking the Job), and optionally a
    check that says why a job of that kind cannot be restarted now (a message) or None."""

    send: str
    restart_check: str | None = None


# One place says how every kind of job is queued again: the recovery sweep and a manager's
# restart both go through `job_dispatch`. Exports stream from the request (no job).
JOB_KIND_RUNNERS: dict[str, JobKindRunner] = {
    Job.Kind.IMPORT: JobKindRunner(
        "labeling.tasks:import_job_send", "labeling.tasks:import_job_restart_check"
    ),
    Job.Kind.EMBED: JobKindRunner("models_app.tasks:embed_job_send"),
    Job.Kind.TRAIN: JobKindRunner(
        "models_app.tasks:train_job_send", "models_app.tasks:train_job_restart_check"
    ),
    Job.Kind.SCORE: JobKindRunner("active_learning.tasks:rank_job_send"),
    Job.Kind.RANK: JobKindRunner("active_learning.tasks:rank_job_send"),
    Job.Kind.LABELING_FUNCTIONS: JobKindRunner("weak_supervision.tasks:enqueue"),
    Job.Kind.LABEL_MODEL: JobKindRunner("weak_supervision.tasks:enqueue"),
    Job.Kind.LLM: JobKindRunner("weak_supervision.tasks:enqueue"),
    Job.Kind.OTHER: JobKindRunner("weak_supervision.tasks:enqueue"),  # the cascade
    Job.Kind.AGGREGATE: JobKindRunner("quality.tasks:aggregate_job_send"),
}


def _resolve(dotted: str):
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def job_restart_refusal(job: Job) -> str | None:
    """Why `job` cannot be queued again (no runner for its kind, or its kind's own check)."""
    runner = JOB_KIND_RUNNERS.get(job.kind)
    if runner is None:
        return f"A {job.get_kind_display().lower()} job cannot be restarted."
    if runner.restart_check:
        return _resolve(runner.restart_check)(job=job)
    return None


def job_dispatch(job: Job) -> None:
    """Queue `job`'s task again (it resumes from its last committed step)."""
    runner = JOB_KIND_RUNNERS.get(job.kind)
    if runner is None:
        job_fail(job_id=job.pk, error="This kind of job cannot be restarted.")
        return
    _resolve(runner.send)(job=job)
