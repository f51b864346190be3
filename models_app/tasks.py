"""Celery tasks of the models app: thin interfaces that load a job by id and call a service.

Queues come from settings at send time (QUEUE_EMBED, QUEUE_TRAIN): routing is a deployment
decision. Tasks are idempotent: `job_start` refuses a finished job, so a redelivered message is a
no-op, and an embedding job resumes after its last committed chunk.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from labeling.jobtasks import JobTask, job_send, job_task_options
from labeling.models import Job

logger = logging.getLogger(__name__)


class TrainJobTask(JobTask):
    """A failed training also releases the project's training lock."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        super().on_failure(exc, task_id, args, kwargs, einfo)
        job_id = kwargs.get("job_id", args[0] if args else None)
        job = Job.objects.filter(pk=job_id).first() if job_id else None
        if job is not None and job.project_id:
            from models_app.services.training import training_lock_release

            training_lock_release(project_id=job.project_id, job_id=job.pk)


_COMMON = job_task_options(time_limit=settings.ML_TASK_TIME_LIMIT)


@shared_task(name="models_app.embed", **_COMMON)
def embed_task(self, job_id: int) -> None:
    from models_app.services.embeddings import embeddings_run

    try:
        embeddings_run(job_id=job_id)
    except Job.DoesNotExist:
        logger.warning("Embedding job %s no longer exists.", job_id)


@shared_task(
    name="models_app.train",
    **job_task_options(time_limit=settings.ML_TASK_TIME_LIMIT, base=TrainJobTask),
)
def train_task(self, job_id: int) -> None:
    from models_app.services.training import training_lock_release, training_run

    try:
        training_run(job_id=job_id)
    except Job.DoesNotExist:
        logger.warning("Training job %s no longer exists.", job_id)
        return
    # Success (failures release in on_failure, after the last retry).
    job = Job.objects.filter(pk=job_id).first()
    if job is not None:
        training_lock_release(project_id=job.project_id, job_id=job.pk)


@shared_task(name="models_app.embed_jobs_resume", ignore_result=True)
def embed_jobs_resume_task() -> None:
    """Periodic (beat): give embedding jobs whose workers all died a new lane."""
    from models_app.services.embeddings import embedding_jobs_resume_stale

    resumed = embedding_jobs_resume_stale()
    if resumed:
        logger.warning("Resumed silent embedding jobs %s.", resumed)


def embed_task_enqueue(*, job_id: int) -> None:
    job_send(embed_task, job_id=job_id, queue=settings.QUEUE_EMBED)


def train_task_enqueue(*, job_id: int) -> None:
    job_send(train_task, job_id=job_id, queue=settings.QUEUE_TRAIN)


def embed_job_send(*, job: Job) -> None:
    embed_task_enqueue(job_id=job.pk)


def train_job_send(*, job: Job) -> None:
    """Queue a training job again, holding its project's training lock (it runs only with
    it); if another training took the lock meanwhile, this one is superseded."""
    from models_app.services.training import training_lock_claim

    holder = training_lock_claim(job=job)
    if holder != job.pk:
        from labeling.services.jobs import job_fail

        job_fail(job_id=job.pk, error=f"Superseded by training job #{holder}.")
        return
    train_task_enqueue(job_id=job.pk)


def train_job_restart_check(*, job: Job) -> str | None:
    from models_app.services.training import training_lock_holder

    holder = training_lock_holder(project_id=job.project_id)
    if holder is not None and holder != job.pk:
        return f"Training job #{holder} is running for this project; wait for it to finish."
    return None
