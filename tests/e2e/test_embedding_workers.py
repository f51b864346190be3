"""Embedding jobs across real worker processes (PostgreSQL, the CI broker): two workers share
one job's chunks; a small project's texts are embedded while a large project's job runs; a
worker killed in the middle of a chunk costs neither the job nor a second embedding."""

import re
import signal
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from labeling.models import Item, Job
from models_app.models import Embedding, EmbeddingChunk
from models_app.services.embeddings import embedding_jobs_resume_stale, embeddings_schedule
from tests.e2e.worker import celery_worker
from tests.factories import ItemFactory, ProjectFactory

WAIT_SECONDS = 240  # a bound so a broken worker fails instead of hanging; not a speed check

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs DATABASE_URL=postgres://...: the workers must open the test database",
    ),
]


def _env(delay: float, chunk: int, stale: int = 120) -> dict[str, str]:
    return {
        "EMBEDDING_MODEL": "hashing",
        "FLYWHEEL_TEST_EMBED_DELAY": str(delay),
        "EMBEDDING_CHUNK": str(chunk),
        "EMBEDDING_BATCH_SIZE": "16",
        "EMBEDDING_PARALLEL_CHUNKS": "4",
        "EMBEDDING_CHUNK_STALE_SECONDS": str(stale),
    }


def _project(n: int, prefix: str):
    project = ProjectFactory(labels=["a", "b"])
    Item.objects.bulk_create(
        ItemFactory.build(project=project, text=f"{prefix} text number {i} words {i % 7}")
        for i in range(n)
    )
    return project


def _wait(condition, what, logs: list[Path]):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        failed = Job.objects.filter(status=Job.Status.FAILED).first()
        assert failed is None, f"job failed: {failed.kind} {failed.error}"
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"timed out waiting for {what}\n" + "\n".join(p.read_text(errors="replace") for p in logs)
    )


def _finished(job) -> bool:
    job.refresh_from_db()
    return job.is_finished


@pytest.fixture
def settings_hashing(settings):
    settings.EMBEDDING_MODEL = "hashing"
    return settings


@pytest.mark.django_db(transaction=True)
def test_two_workers_share_one_job_and_embed_each_text_once(tmp_path, settings_hashing):
    settings = settings_hashing
    queues = [settings.QUEUE_EMBED, settings.QUEUE_TRAIN, settings.QUEUE_DEFAULT]
    project = _project(600, "shared")
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    with (
        celery_worker(logs[0], queues=queues, name="emb1", env=_env(0.004, 64)),
        celery_worker(logs[1], queues=queues, name="emb2", env=_env(0.004, 64)),
    ):
        time.sleep(3)  # both workers connected before the job's lanes are queued
        with transaction.atomic():
            job = embeddings_schedule(project=project)
        _wait(lambda: _finished(job), "the embedding job", logs)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total) == (600, 600)
    hashes = Item.objects.filter(project=project).values("content_hash")
    assert Embedding.objects.filter(model_name="hashing", content_hash__in=hashes).count() == 600
    chunks = EmbeddingChunk.objects.filter(job=job)
    assert set(chunks.values_list("status", flat=True)) == {"done"}
    assert sum(chunks.values_list("embedded", flat=True)) == 600  # nothing embedded twice
    # both processes embedded chunks of it
    for log in logs:
        done = re.findall(r"Task models_app\.embed\[[^\]]+\] succeeded", log.read_text())
        assert done, f"{log.name} embedded nothing:\n{log.read_text()}"


@pytest.mark.django_db(transaction=True)
def test_a_small_project_is_embedded_while_a_large_projects_job_runs(tmp_path, settings_hashing):
    settings = settings_hashing
    queues = [settings.QUEUE_EMBED, settings.QUEUE_TRAIN, settings.QUEUE_DEFAULT]
    large, small = _project(2000, "large"), _project(10, "small")
    logs = [tmp_path / "w.log"]
    with celery_worker(logs[0], queues=queues, name="fair", env=_env(0.01, 100)):
        with transaction.atomic():
            big_job = embeddings_schedule(project=large)
        _wait(
            lambda: Job.objects.filter(pk=big_job.pk, progress_done__gt=0).exists(),
            "the large job to start",
            logs,
        )
        with transaction.atomic():
            small_job = embeddings_schedule(project=small)
        _wait(lambda: _finished(small_job), "the small project's job", logs)
        big_job.refresh_from_db()
        # then the small project was embedded while the large one was still being embedded
        assert small_job.status == Job.Status.SUCCEEDED, small_job.error
        assert big_job.status == Job.Status.RUNNING
        assert big_job.progress_done < big_job.progress_total == 2000
        _wait(lambda: _finished(big_job), "the large job", logs)
    assert big_job.status == Job.Status.SUCCEEDED, big_job.error


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_chunk_loses_nothing_and_embeds_nothing_twice(
    tmp_path, settings_hashing
):
    settings = settings_hashing
    settings.EMBEDDING_CHUNK_STALE_SECONDS = 3
    queues = [settings.QUEUE_EMBED, settings.QUEUE_TRAIN, settings.QUEUE_DEFAULT]
    project = _project(400, "killed")
    logs = [tmp_path / "doomed.log", tmp_path / "rescuer.log"]
    with celery_worker(logs[0], queues=queues, name="doomed", env=_env(0.02, 200, stale=3)) as w:
        with transaction.atomic():
            job = embeddings_schedule(project=project)
        # when the worker has committed a batch of a chunk but not finished it
        _wait(
            lambda: (
                EmbeddingChunk.objects.filter(job=job, status="running", embedded__gt=0)
                .exclude(embedded=0)
                .exists()
            ),
            "a chunk in progress",
            logs,
        )
        w.send_signal(signal.SIGKILL)
        w.wait()
    hashes = Item.objects.filter(project=project).values("content_hash")
    items_embedded = Embedding.objects.filter(model_name="hashing", content_hash__in=hashes)
    assert 0 < items_embedded.count() < 400
    time.sleep(3.5)  # the chunk's heartbeat is now older than EMBEDDING_CHUNK_STALE_SECONDS

    # then a new worker, given the job again by the beat's sweep, finishes it
    with celery_worker(logs[1], queues=queues, name="rescuer", env=_env(0.0, 200, stale=3)):
        assert embedding_jobs_resume_stale() == [job.pk]
        _wait(lambda: _finished(job), "the rescued job", logs)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert items_embedded.count() == 400
    chunks = EmbeddingChunk.objects.filter(job=job)
    assert sum(chunks.values_list("embedded", flat=True)) == 400  # each text once
    assert chunks.filter(attempts__gt=1).exists()  # the killed worker's chunk was taken over
