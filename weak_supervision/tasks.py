"""Celery tasks of the pre-label pipeline: thin interfaces that load a job by id and call its
service. Every task is idempotent (`job_start` ignores finished jobs; votes and predictions are
upserts; LLM answers are cached) so ``acks_late`` redelivery is safe."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from labeling.jobtasks import job_continue, job_send, job_task_options
from labeling.models import Job

logger = logging.getLogger(__name__)

_COMMON = job_task_options(time_limit=settings.WS_TASK_TIME_LIMIT, max_retries=8)


@shared_task(name="weak_supervision.apply_lfs", **_COMMON)
def apply_lfs_task(self, job_id: int) -> None:
    from weak_supervision.services.apply import apply_run

    deadline = time.monotonic() + settings.WS_TASK_SLICE_SECONDS
    try:
        job = apply_run(job_id=job_id, deadline=deadline)
    except Job.DoesNotExist:
        logger.warning("Apply job %s no longer exists.", job_id)
        return
    if job.status == Job.Status.RUNNING:
        job_continue(apply_lfs_task, job_id=job_id, queue=settings.QUEUE_DEFAULT)


@shared_task(name="weak_supervision.label_model", **_COMMON)
def label_model_task(self, job_id: int) -> None:
    from weak_supervision.services.label_model import label_model_run

    label_model_run(job_id=job_id)


@shared_task(name="weak_supervision.llm", **_COMMON)
def llm_task(self, job_id: int) -> None:
    from weak_supervision.services.llm import llm_run

    llm_run(job_id=job_id)


@shared_task(name="weak_supervision.cascade", **_COMMON)
def cascade_task(self, job_id: int) -> None:
    from weak_supervision.services.cascade import cascade_run

    cascade_run(job_id=job_id)


def enqueue(*, job: Job) -> None:
    """Send a job's task to its queue (queue names read at send time). Call on commit."""
    if job.kind == Job.Kind.LABELING_FUNCTIONS:
        job_send(apply_lfs_task, job_id=job.pk, queue=settings.QUEUE_DEFAULT)
    elif job.kind == Job.Kind.LABEL_MODEL:
        job_send(label_model_task, job_id=job.pk, queue=settings.QUEUE_DEFAULT)
    elif job.kind == Job.Kind.LLM:
        job_send(llm_task, job_id=job.pk, queue=settings.QUEUE_LLM)
    elif job.params.get("action") == "cascade":
        job_send(cascade_task, job_id=job.pk, queue=settings.QUEUE_DEFAULT)
    else:
        raise ValueError(f"Job {job.pk} ({job.kind}) is not a pre-label job.")
