"""Embedding the project's texts: each distinct text once per embedding model, in a job.

Lead's import pipeline: call ``embeddings_schedule(project=...)`` when an import job completes
(inside or outside a transaction: the task is queued on commit). Training and ranking jobs also
embed whatever is missing before they read vectors, so nothing depends on that call having run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from labeling.models import Item, Job, Project
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from models_app.ml.embedding import embedder_load, unique_texts, vector_to_bytes
from models_app.models import Embedding
from models_app.services.config import embedding_model_name


def _missing(project: Project, model_name: str):
    stored = Embedding.objects.filter(model_name=model_name, content_hash=OuterRef("content_hash"))
    return Item.objects.filter(project=project).exclude(Exists(stored))


def embeddings_missing_count(*, project: Project, model_name: str | None = None) -> int:
    return _missing(project, model_name or embedding_model_name()).count()


def embeddings_schedule(*, project: Project, user=None, then_rank: bool = True) -> Job:
    """Queue an embedding job for the project (unless one is already waiting or running) and
    return it. The task is sent after the surrounding transaction commits. With `then_rank`,
    the job queues a re-rank of the project when it has embedded something."""
    from models_app.tasks import embed_task_enqueue

    recent = timezone.now() - timedelta(seconds=settings.TRAINING_LOCK_STALE_SECONDS)
    existing = (
        Job.objects.filter(
            project=project,
            kind=Job.Kind.EMBED,
            status__in=[Job.Status.PENDING, Job.Status.RUNNING],
            created_at__gte=recent,
        )
        .order_by("-created_at")
        .first()
    )
    if existing is not None:
        return existing
    job = job_create(
        kind=Job.Kind.EMBED,
        project=project,
        created_by=user,
        params={"model": embedding_model_name(), "then_rank": then_rank},
    )
    transaction.on_commit(lambda: embed_task_enqueue(job_id=job.pk))
    return job


def embeddings_embed_missing(
    *,
    project: Project,
    model_name: str,
    after_id: int = 0,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Embed every item text of the project that has no vector under `model_name`, in chunks
    of EMBEDDING_CHUNK items (each chunk committed, then ``on_chunk(last_item_id, n_embedded)``
    is called). Duplicate texts, within the chunk or already stored, are never embedded again.
    Returns counts; safe to run twice at once (inserts ignore existing rows)."""
    chunk = settings.EMBEDDING_CHUNK
    embedder = None
    embedded = 0
    seen_items = 0
    encode_seconds = 0.0
    while True:
        rows = list(
            _missing(project, model_name)
            .filter(id__gt=after_id)
            .order_by("id")
            .values_list("id", "content_hash", "text")[:chunk]
        )
        if not rows:
            break
        after_id = rows[-1][0]
        seen_items += len(rows)
        hashes, texts = unique_texts(text for _, _, text in rows)
        if embedder is None:
            embedder = embedder_load(model_name, settings.EMBEDDING_BATCH_SIZE)
        started = time.perf_counter()
        vectors = embedder.encode(texts)
        encode_seconds += time.perf_counter() - started
        with transaction.atomic():
            Embedding.objects.bulk_create(
                [
                    Embedding(
                        model_name=model_name,
                        content_hash=h,
                        dim=embedder.dim,
                        vector=vector_to_bytes(v),
                    )
                    for h, v in zip(hashes, vectors, strict=True)
                ],
                ignore_conflicts=True,
                batch_size=1000,
            )
            embedded += len(hashes)
            if on_chunk is not None:
                on_chunk(after_id, embedded)
    return {"items": seen_items, "embedded": embedded, "encode_ms": int(encode_seconds * 1000)}


def embeddings_run(*, job_id: int) -> Job | None:
    """Run (or resume after its last committed chunk) embedding job `job_id`."""
    from models_app.services.vectors import vectors_rebuild

    job = job_start(job_id=job_id)
    if job is None:
        return None
    project = job.project
    model_name = job.params.get("model") or embedding_model_name()
    after_id = int(job.cursor.get("after_id", 0))
    done_before = int(job.cursor.get("embedded", 0))
    total = embeddings_missing_count(project=project, model_name=model_name)
    job_progress(
        job=job,
        done=done_before,
        total=done_before + total,
        message=f"Embedding {total} items with {model_name}",
    )

    def on_chunk(last_id: int, embedded: int) -> None:
        job_progress(
            job=job,
            done=done_before + embedded,
            message=f"Embedded {done_before + embedded} texts",
            cursor={"after_id": last_id, "embedded": done_before + embedded},
        )

    counts = embeddings_embed_missing(
        project=project, model_name=model_name, after_id=after_id, on_chunk=on_chunk
    )
    vectors_rebuild(project=project, model_name=model_name)
    result = {"model": model_name, **counts, "embedded": done_before + counts["embedded"]}
    with transaction.atomic():
        job_succeed(
            job=job,
            result=result,
            message=f"Embedded {result['embedded']} distinct texts with {model_name}",
        )
        if job.params.get("then_rank", True):
            from active_learning.services.ranking import ranking_schedule

            ranking_schedule(project=project, reason="embedded")
    return job


def vectors_ready(*, project: Project, model_name: str):
    """The project's vector snapshot, embedding missing texts first only when the snapshot
    cannot be built (a fresh snapshot means every item was embedded: no scan needed)."""
    from models_app.services.vectors import VectorsMissing, vectors_load

    try:
        return vectors_load(project=project, model_name=model_name)
    except VectorsMissing:
        embeddings_embed_missing(project=project, model_name=model_name)
        return vectors_load(project=project, model_name=model_name)
