"""Job rows: the visible state of background work (status, progress, error), who runs them
(a run token and a heartbeat), and bringing back jobs whose worker died."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from labeling.errors import ConflictError
from labeling.models import Job, Project

logger = logging.getLogger(__name__)

# The Celery task id of the run this thread works for (`JobTask` sets it); None outside a
# worker, where services run jobs inline (commands, tests, benchmarks) with no claim.
_run_token: ContextVar[str | None] = ContextVar("job_run_token", default=None)


class JobHeldElsewhere(ConflictError):
    """Another run of the job is alive (its heartbeat is fresh): this one stops and does
    nothing, e.g. a message the broker delivered again while the first run still works."""


@contextmanager
def job_run_context(*, token: str) -> Iterator[None]:
    """Run the enclosed code as the job run `token` (what `job_start` claims the job for)."""
    reset = _run_token.set(token)
    try:
        yield
    finally:
        _run_token.reset(reset)


def job_run_token() -> str | None:
    return _run_token.get()


def job_last_sign_of_life(job: Job) -> datetime:
    return job.heartbeat_at or job.started_at or job.created_at


def job_is_silent(*, job: Job, now: datetime | None = None, stale_seconds: float | None = None):
    """Whether an unfinished job's worker has said nothing for `stale_seconds` (default
    JOB_STALE_SECONDS): a running job whose worker died, or a pending one whose message was
    lost. Live runs heartbeat every JOB_HEARTBEAT_SECONDS."""
    seconds = settings.JOB_STALE_SECONDS if stale_seconds is None else stale_seconds
    now = now or timezone.now()
    return job_last_sign_of_life(job) < now - timedelta(seconds=seconds)


# A pending job waits for a free worker, which can take long on a busy queue; if its message
# was lost, the recovery sweep sends it again. Only after this long does it stop counting as
# alive for "is one already queued?" checks.
_PENDING_ALIVE = timedelta(minutes=30)


def job_is_stuck(*, job: Job) -> bool:
    """Unfinished and silent: what the recovery sweep restarts and a manager may restart now."""
    return not job.is_finished and job_is_silent(job=job)


def jobs_alive_q(*, now: datetime | None = None) -> Q:
    """Unfinished jobs that still count: running with a heartbeat within JOB_STALE_SECONDS, or
    pending for less than half an hour."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    return Q(status=Job.Status.RUNNING, heartbeat_at__gte=cutoff) | Q(
        status=Job.Status.PENDING, created_at__gte=now - _PENDING_ALIVE
    )


class JobSpeed(NamedTuple):
    items_per_second: float | None
    eta_seconds: int | None


def job_speed(
    *,
    status: str,
    done: int,
    total: int | None,
    started_at: datetime | None,
    now: datetime,
) -> JobSpeed:
    """Throughput of a running job since it started and the time left at that pace; None
    where it cannot be known (not running, nothing done yet, or no total for the time left)."""
    if status != Job.Status.RUNNING or started_at is None or done <= 0:
        return JobSpeed(None, None)
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return JobSpeed(None, None)
    rate = done / elapsed
    eta = None
    if total is not None and total >= done:
        eta = round((total - done) / rate)
    return JobSpeed(round(rate, 2), eta)


def job_create(
    *,
    kind: str,
    project: Project | None = None,
    params: dict[str, Any] | None = None,
    created_by=None,
    progress_total: int | None = None,
) -> Job:
    return Job.objects.create(
        kind=kind,
        project=project,
        params=params or {},
        created_by=created_by,
        progress_total=progress_total,
    )


def job_start(*, job_id: int, exclusive: bool = True) -> Job | None:
    """Mark a job running and count the attempt. Returns None if the job is already finished,
    so a re-delivered task message is a no-op (idempotence guard).

    In a worker run (`job_run_context`), an `exclusive` job is also claimed for that run: if
    another run holds it and its heartbeat is fresh, this raises `JobHeldElsewhere` and
    changes nothing; a holder that went silent is taken over. Jobs that several workers share
    (embedding lanes) pass ``exclusive=False``."""
    token = _run_token.get() if exclusive else None
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return None
        now = timezone.now()
        held = job.status == Job.Status.RUNNING and job.run_token not in ("", token)
        if token is not None and held and not job_is_silent(job=job, now=now):
            raise JobHeldElsewhere(f"Job {job_id} is held by another live run.", {"job": job_id})
        job.status = Job.Status.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.attempts = F("attempts") + 1
        fields = ["status", "started_at", "heartbeat_at", "attempts"]
        if token is not None:
            job.run_token = token
            fields.append("run_token")
        job.save(update_fields=fields)
    job.refresh_from_db()
    return job


def job_heartbeat(*, job_id: int, token: str) -> bool:
    """A live run's sign of life (`JobTask`'s heartbeat thread): the job's heartbeat moves on
    while the run holds it (or nobody does: shared jobs). False once it is not ours."""
    return bool(
        Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, run_token__in=[token, ""]).update(
            heartbeat_at=timezone.now()
        )
    )


def job_hand_off(*, job_id: int, to_token: str) -> None:
    """Pass the current run's claim to its continuation (the task that runs the next slice),
    so the continuation does not wait for this run's heartbeat to go stale."""
    current = _run_token.get()
    if current is not None:
        Job.objects.filter(pk=job_id, run_token=current).update(run_token=to_token)


def job_release(*, job_id: int, token: str) -> None:
    """A run ends: drop its claim, if it still has it."""
    Job.objects.filter(pk=job_id, run_token=token).update(run_token="")


def job_progress(
    *,
    job: Job,
    done: int,
    total: int | None = None,
    message: str = "",
    cursor: dict[str, Any] | None = None,
) -> None:
    """Record progress. Call inside the transaction that commits the work it describes, so the
    cursor and the work are committed together."""
    job.progress_done = done
    fields = ["progress_done", "heartbeat_at"]
    if total is not None:
        job.progress_total = total
        fields.append("progress_total")
    if message:
        job.message = message[:500]
        fields.append("message")
    if cursor is not None:
        job.cursor = cursor
        fields.append("cursor")
    job.heartbeat_at = timezone.now()
    job.save(update_fields=fields)


def job_succeed(*, job: Job, result: dict[str, Any] | None = None, message: str = "") -> None:
    job.status = Job.Status.SUCCEEDED
    job.result = result or {}
    job.finished_at = timezone.now()
    if message:
        job.message = message[:500]
    if job.progress_total is not None:
        job.progress_done = job.progress_total
    job.save(
        update_fields=[
            "status",
            "result",
            "finished_at",
            "message",
            "progress_done",
            "heartbeat_at",
        ]
    )


def job_fail(*, job_id: int, error: str, result: dict[str, Any] | None = None) -> None:
    """Record a failure visibly. Uses a fresh row so it works after a rolled-back transaction."""
    updates: dict[str, Any] = {
        "status": Job.Status.FAILED,
        "error": error[:20000],
        "finished_at": timezone.now(),
        "message": error.splitlines()[0][:500] if error else "failed",
    }
    if result is not None:
        updates["result"] = result
    Job.objects.filter(pk=job_id).exclude(
        status__in=[Job.Status.SUCCEEDED, Job.Status.CANCELLED]
    ).update(**updates)


def job_fail_visibly(*, job: Job, error: str) -> None:
    job_fail(job_id=job.pk, error=error)
    logger.warning("Job %s (%s) failed: %s", job.pk, job.kind, error)


JobDispatcher = Callable[[Job], None]


def jobs_recover(
    *,
    dispatch: JobDispatcher,
    stale_seconds: float | None = None,
    kinds: list[str] | None = None,
    exclude_kinds: tuple[str, ...] = (),
) -> list[int]:
    """Bring back every unfinished job whose worker has been silent for `stale_seconds`
    (default JOB_STALE_SECONDS): a running job (its worker died: counted in `restarts`) or a
    pending one (its message was lost). Each is queued again with `dispatch` after commit and
    resumes from its last committed step; one restarted JOB_MAX_RESTARTS times already fails
    instead, so a job that kills its worker every time ends visibly rather than in a loop.
    Rows another transaction holds are skipped (their run is alive). Returns the job ids."""
    seconds = settings.JOB_STALE_SECONDS if stale_seconds is None else stale_seconds
    now = timezone.now()
    cutoff = now - timedelta(seconds=seconds)
    silent = Job.objects.filter(status__in=[Job.Status.PENDING, Job.Status.RUNNING]).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    if kinds is not None:
        silent = silent.filter(kind__in=kinds)
    if exclude_kinds:
        silent = silent.exclude(kind__in=exclude_kinds)
    recovered: list[int] = []
    for job_id in silent.order_by("created_at").values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            job = (
                Job.objects.select_for_update(skip_locked=True)
                .filter(pk=job_id, status__in=[Job.Status.PENDING, Job.Status.RUNNING])
                .first()
            )
            if job is None or not job_is_silent(job=job, now=now, stale_seconds=seconds):
                continue
            if job.status == Job.Status.RUNNING:
                if job.restarts >= settings.JOB_MAX_RESTARTS:
                    job_fail_visibly(
                        job=job,
                        error=f"Stopped: its worker died or hit the time limit "
                        f"{job.restarts + 1} times.",
                    )
                    continue
                job.restarts += 1
                job.message = "Resumed after its worker stopped responding"
            # The dispatch time counts as a sign of life: the next sweep gives the new message
            # JOB_STALE_SECONDS before it counts as lost too.
            job.heartbeat_at = now
            job.run_token = ""
            job.save(update_fields=["restarts", "message", "heartbeat_at", "run_token"])
            transaction.on_commit(lambda job=job: dispatch(job))
        recovered.append(job_id)
    return recovered


def job_restart(
    *,
    job: Job,
    dispatch: JobDispatcher,
    refusal: Callable[[Job], str | None] = lambda job: None,
    user=None,
) -> Job:
    """A manager's "restart": queue a failed job again, or a stuck one (silent for
    JOB_STALE_SECONDS) now instead of at the next sweep. It resumes from its last committed
    step. A live or succeeded job, or one its kind's `refusal` check turns down, is a 409."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status in (Job.Status.SUCCEEDED, Job.Status.CANCELLED):
            raise ConflictError(
                f"Job {job.pk} is {job.status}; there is nothing to restart.", {"job": job.pk}
            )
        if job.status != Job.Status.FAILED and not job_is_silent(job=job):
            seconds = int((timezone.now() - job_last_sign_of_life(job)).total_seconds())
            raise ConflictError(
                f"Job {job.pk} is still {job.status}: its worker reported {seconds} s ago.",
                {"job": job.pk},
            )
        reason = refusal(job)
        if reason:
            raise ConflictError(reason, {"job": job.pk})
        who = getattr(user, "username", "") or "a manager"
        job.status = Job.Status.PENDING
        job.error = ""
        job.finished_at = None
        job.run_token = ""
        job.heartbeat_at = timezone.now()
        job.message = f"Restarted by {who}"[:500]
        job.save(
            update_fields=["status", "error", "finished_at", "run_token", "heartbeat_at", "message"]
        )
        transaction.on_commit(lambda: dispatch(job))
    return job
