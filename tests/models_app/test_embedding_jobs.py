"""Embedding jobs in chunks: planning, lanes, progress per batch, a ranking before the end,
take-over of a silent chunk, a claim lost mid-chunk, each text embedded once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Item, Job
from models_app.ml import embedding as embedding_module
from models_app.models import Embedding, EmbeddingChunk
from models_app.services import embeddings as service
from models_app.services.embeddings import (
    embedding_jobs_resume_stale,
    embeddings_run,
    embeddings_schedule,
)
from tests.models_app.factories import topic_project
from tests.models_app.flywheel import run_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def encoded(monkeypatch):
    """Every text the embedder is asked to encode, in order."""
    seen: list[str] = []
    real = embedding_module.HashingEmbedder.encode

    def encode(self, texts):
        seen.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(embedding_module.HashingEmbedder, "encode", encode)
    return seen


@pytest.fixture
def small_chunks(settings):
    settings.EMBEDDING_CHUNK = 8
    settings.EMBEDDING_BATCH_SIZE = 3
    settings.EMBEDDING_PARALLEL_CHUNKS = 3


def test_a_job_is_cut_into_chunks_and_every_text_is_embedded_once(
    no_broker, django_capture_on_commit_callbacks, small_chunks, encoded
):
    # Given 30 items
    project = topic_project(per_topic=10)

    # When an embedding job is scheduled and its first lane runs
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    _name, job_id = no_broker.pop(0)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_run(job_id=job_id)

    # Then it is planned: a small first chunk (1 item), then chunks of 8; its lane queued two
    # more lanes and itself again; the bar counts the first chunk's items
    chunks = list(EmbeddingChunk.objects.filter(job=job).order_by("number"))
    assert [len(c.item_ids) for c in chunks] == [1, 8, 8, 8, 5]
    assert sorted(i for c in chunks for i in c.item_ids) == sorted(
        Item.objects.filter(project=project).values_list("id", flat=True)
    )
    assert [n for n, _ in no_broker].count("embed_task_enqueue") == 3
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total) == (1, 30)
    # and a ranking is queued on the first chunk's vectors, before the job ends
    assert ("rank_task_enqueue", Job.objects.get(project=project, kind=Job.Kind.RANK).pk) in (
        no_broker
    )

    # When the lanes run to the end
    run_pending(no_broker)

    # Then the job succeeded once, every text was encoded once, and the bar is full
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.result["embedded"], job.result["chunks"]) == (30, 30, 5)
    texts = set(Item.objects.filter(project=project).values_list("text", flat=True))
    items_encoded = [t for t in encoded if t in texts]  # not the label prompts (zero-shot)
    assert len(items_encoded) == len(set(items_encoded)) == 30
    assert Embedding.objects.count() == 30 + 3  # and the three label prompts (zero-shot)
    assert not EmbeddingChunk.objects.filter(job=job).exclude(status="done").exists()


def test_the_order_is_random_so_the_first_vectors_are_a_sample_of_the_project(
    no_broker, django_capture_on_commit_callbacks, small_chunks
):
    project = topic_project(per_topic=10)
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_run(job_id=job.pk)
    ids = [i for c in EmbeddingChunk.objects.filter(job=job).order_by("number") for i in c.item_ids]
    assert ids != sorted(ids)


def test_a_silent_chunk_is_taken_over_and_its_committed_batches_are_not_embedded_again(
    no_broker, django_capture_on_commit_callbacks, small_chunks, encoded
):
    # Given a job whose worker died in its second chunk after committing one batch
    project = topic_project(per_topic=10)
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_run(job_id=job.pk)
    no_broker.clear()
    chunk = EmbeddingChunk.objects.get(job=job, number=1)
    texts = dict(Item.objects.filter(pk__in=chunk.item_ids).values_list("content_hash", "text"))
    first_batch = sorted(texts.items(), key=lambda pair: len(pair[1]))[:3]
    service.embed_texts_missing(model_name="hashing", pairs=first_batch)
    stale = timezone.now() - timedelta(seconds=3600)
    EmbeddingChunk.objects.filter(pk=chunk.pk).update(
        status="running", token="dead", heartbeat_at=stale
    )
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    encoded.clear()

    # When the beat sweep finds the silent job and its new lanes run
    assert embedding_jobs_resume_stale() == [job.pk]
    no_broker.append(("embed_task_enqueue", job.pk))
    run_pending(no_broker)

    # Then the chunk was taken over and finished, and no text was encoded twice
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts) == ("done", 1)
    assert chunk.token != "dead"
    already = {text for _, text in first_batch}
    texts = set(Item.objects.filter(project=project).values_list("text", flat=True))
    items_encoded = [t for t in encoded if t in texts]  # not the label prompts (zero-shot)
    assert not already & set(items_encoded)
    assert len(items_encoded) == len(set(items_encoded)) == 30 - 1 - 3
    assert job.progress_done == 30


def test_a_run_that_lost_its_claim_writes_nothing(
    no_broker, django_capture_on_commit_callbacks, small_chunks
):
    project = topic_project(per_topic=3)
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    job = service.job_start(job_id=job.pk)
    service._plan(job, "hashing")
    chunk, token = service._claim(job)
    # another worker took the chunk over meanwhile
    EmbeddingChunk.objects.filter(pk=chunk.pk).update(token="other")

    finished = service._process(job, chunk, token, "hashing")

    assert finished is False
    hashes = Item.objects.filter(project=project).values("content_hash")
    assert not Embedding.objects.filter(content_hash__in=hashes).exists()
    chunk.refresh_from_db()
    assert (chunk.status, chunk.embedded) == ("running", 0)


def test_a_running_job_is_not_resumed_while_its_workers_report(
    no_broker, django_capture_on_commit_callbacks
):
    project = topic_project(per_topic=3)
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    Job.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now())
    assert embedding_jobs_resume_stale() == []


def test_run_to_end_embeds_every_chunk_in_this_process_and_queues_nothing(
    no_broker, django_capture_on_commit_callbacks, small_chunks
):
    project = topic_project(per_topic=10)
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    no_broker.clear()

    with django_capture_on_commit_callbacks(execute=True):
        job = service.embeddings_run_to_end(job_id=job.pk)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Embedding.objects.count() == 30 + 3  # and the three label prompts (zero-shot)
    assert [name for name, _ in no_broker if name == "embed_task_enqueue"] == []


def test_training_while_the_embedding_job_runs_reads_only_what_it_needs(
    no_broker, django_capture_on_commit_callbacks, small_chunks, encoded, monkeypatch
):
    # Given a large-enough project whose embedding job has not run yet, and 18 labels, 6 more
    # arriving while the training job starts
    import models_app.services.training as training
    from models_app.models import ModelVersion
    from models_app.services.training import training_request, training_run
    from tests.models_app.factories import label_items

    project = topic_project(per_topic=40)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)  # pending: its lanes will embed the rest
    labelled = list(Item.objects.filter(project=project).order_by("?")[:24])
    label_items(labelled[:18])
    no_broker.clear()
    real_split = training._split

    def split_after_more_labels(**kwargs):
        label_items(labelled[18:])
        return real_split(**kwargs)

    monkeypatch.setattr(training, "_split", split_after_more_labels)

    # When a training job runs
    with django_capture_on_commit_callbacks(execute=True):
        job = training_request(project=project, reason="test")
    training_run(job_id=job.pk)

    # Then it trained on the 24 labels, embedding only their texts (not the whole project)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    version = ModelVersion.objects.get(project=project)
    assert version.train_size + version.holdout_size == 24
    texts = {item.text for item in labelled}
    assert set(encoded) <= texts | {"sport", "tech", "politics"}
    assert Embedding.objects.count() == 24


def test_items_imported_while_the_job_runs_are_embedded_by_it_too(
    no_broker, django_capture_on_commit_callbacks, small_chunks
):
    # Given a running job whose chunks were planned before a second import added items
    from tests.factories import ItemFactory

    project = topic_project(per_topic=4)
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_run(job_id=job.pk)
    late = [ItemFactory(project=project, text=f"a late article number {n}") for n in range(5)]
    assert embeddings_schedule(project=project) == job  # the import finds this job running

    # When its lanes run to the end
    run_pending(no_broker)

    # Then it embedded the late items as well and succeeded, with a full snapshot
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total) == (17, 17)
    hashes = [item.content_hash for item in late]
    assert Embedding.objects.filter(content_hash__in=hashes).count() == 5
