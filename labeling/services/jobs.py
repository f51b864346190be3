"""Job rows: the visible state of background work (status, progress, error)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from labeling.models import Job, Project


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


def job_start(*, job_id: int) -> Job | None:
    """Mark a job running and count the attempt. Returns None if the job is already finished,
    so a re-delivered task message is a no-op (idempotence guard)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return None
        now = timezone.now()
        job.status = Job.Status.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.attempts = F("attempts") + 1
        job.save(update_fields=["status", "started_at", "heartbeat_at", "attempts"])
    job.refresh_from_db()
    return job


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
