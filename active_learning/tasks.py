"""Celery tasks of the active-learning app: re-ranking (train queue) and mining (default)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from labeling.jobtasks import TRANSIENT_DB_ERRORS, job_send
from labeling.models import Job, Project
from models_app.tasks import _COMMON

logger = logging.getLogger(__name__)


@shared_task(name="active_learning.rank", **_COMMON)
def rank_task(self, job_id: int) -> None:
    from active_learning.services.ranking import ranking_run

    try:
        ranking_run(job_id=job_id)
    except Job.DoesNotExist:
        logger.warning("Ranking job %s no longer exists.", job_id)


# Not a job (no Job row): a plain task, retried on transient database errors.
@shared_task(
    name="active_learning.mine",
    acks_late=True,
    autoretry_for=TRANSIENT_DB_ERRORS,
    retry_backoff=5,
    retry_jitter=True,
    max_retries=5,
    time_limit=settings.ML_TASK_TIME_LIMIT,
)
def mine_task(project_id: int, item_ids: list[int]) -> None:
    from active_learning.services.mining import mining_check

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        mining_check(project=project, item_ids=item_ids)


def rank_task_enqueue(*, job_id: int) -> None:
    job_send(rank_task, job_id=job_id, queue=settings.QUEUE_TRAIN)


def rank_job_send(*, job: Job) -> None:
    rank_task_enqueue(job_id=job.pk)


def mine_task_enqueue(*, project_id: int, item_ids: list[int]) -> None:
    mine_task.apply_async((project_id, item_ids), queue=settings.QUEUE_DEFAULT)
