"""Celery tasks of the quality app: thin interfaces that load a job by id and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from labeling.jobtasks import job_send, job_task_options
from labeling.models import Job

logger = logging.getLogger(__name__)


@shared_task(
    name="quality.aggregate", **job_task_options(time_limit=settings.QUALITY_TASK_TIME_LIMIT)
)
def aggregate_task(self, job_id: int) -> None:
    """Re-aggregate a project's final labels. Idempotent: re-running computes the same labels
    and writes only what differs."""
    from quality.services.aggregation import aggregation_job_run

    try:
        aggregation_job_run(job_id=job_id)
    except Job.DoesNotExist:
        logger.warning("Aggregation job %s no longer exists; nothing to do.", job_id)


def aggregate_task_enqueue(*, job_id: int, countdown: int = 0) -> None:
    job_send(aggregate_task, job_id=job_id, queue=settings.QUEUE_DEFAULT, countdown=countdown)


def aggregate_job_send(*, job: Job) -> None:
    aggregate_task_enqueue(job_id=job.pk)


@shared_task(
    name="quality.crowd_import", **job_task_options(time_limit=settings.QUALITY_TASK_TIME_LIMIT)
)
def crowd_import_task(self, job_id: int) -> None:
    """Import a stored crowd-label file into its project (all or nothing)."""
    from quality.services.crowd_import import crowd_import_job_run

    crowd_import_job_run(job_id=job_id)


def crowd_import_task_enqueue(*, job_id: int) -> None:
    job_send(crowd_import_task, job_id=job_id, queue=settings.QUEUE_IMPORT)
