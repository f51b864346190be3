"""Embedding the project's texts: each distinct text once per embedding model, in a job split
into chunks that any number of workers process in parallel.

A job is planned once: the project's items without a vector are cut, in a seeded random order,
into `EmbeddingChunk` rows (`EMBEDDING_CHUNK` items each; the first one smaller, so the first
vectors arrive within seconds). Each task run is one *lane*: it claims the next pending chunk
(or one whose worker went silent for `EMBEDDING_CHUNK_STALE_SECONDS`), embeds its missing texts
in batches of `EMBEDDING_BATCH_SIZE`, shortest first, committing each batch with the job's
progress and the chunk's heartbeat, marks the chunk done and queues itself again at the back
of the embed queue. A job keeps at most `EMBEDDING_PARALLEL_CHUNKS` lanes in flight, so another
project's job queued meanwhile waits for at most that many chunks, never for the whole job.
The lane that finds every chunk done writes the vector snapshot, marks the job succeeded and
queues a ranking. A text is never embedded twice: a chunk is held by one claim at a time, each
batch inserts only texts still missing, and a batch whose claim was taken over writes nothing.

While the job runs, a ranking is queued after the first chunk and again each time the stored
vectors double, so the cold-start ranking serves representative items long before the job ends.

Lead's import pipeline: call ``embeddings_schedule(project=...)`` when an import job completes
(inside or outside a transaction: the task is queued on commit). Training and ranking jobs read
what is embedded (and embed the few labelled items still missing themselves), so nothing waits
for that call to have run.
"""

from __future__ import annotations

import itertools
import logging
import random
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q, Sum
from django.utils import timezone

from labeling.models import Item, Job, Project
from labeling.services.jobs import (
    job_create,
    job_progress,
    job_start,
    job_succeed,
    jobs_alive_q,
)
from models_app.ml.embedding import embedder_load, unique_texts, vector_to_bytes
from models_app.models import Embedding, EmbeddingChunk
from models_app.services.config import embedding_model_name

logger = logging.getLogger(__name__)

Chunk = EmbeddingChunk.Status


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

    existing = (
        Job.objects.filter(jobs_alive_q(), project=project, kind=Job.Kind.EMBED)
        .order_by("-created_at")
        .first()
    )
    if existing is not None:
        return existing
    job = job_create(
        kind=Job.Kind.EMBED,
        project=project,
        created_by=user,
        params={
            "model": embedding_model_name(),
            "then_rank": then_rank,
            "seed": random.SystemRandom().randrange(2**31),
        },
        progress_total=None,
    )
    transaction.on_commit(lambda: embed_task_enqueue(job_id=job.pk))
    return job


def embed_texts_missing(
    *, model_name: str, pairs: list[tuple[str, str]], still_owned=None
) -> tuple[int, float]:
    """Embed the (content hash, text) pairs that have no vector under `model_name` yet, in
    batches of EMBEDDING_BATCH_SIZE, shortest texts first (a batch pads to its longest text).
    Each batch is committed with ``still_owned(n_embedded)`` called inside its transaction: a
    False answer rolls the batch back and stops (the caller lost its claim). Returns (texts
    embedded, seconds spent encoding)."""
    import time

    hashes, texts = unique_texts(text for _, text in pairs)
    stored = set(
        Embedding.objects.filter(model_name=model_name, content_hash__in=hashes).values_list(
            "content_hash", flat=True
        )
    )
    todo = sorted(
        ((h, t) for h, t in zip(hashes, texts, strict=True) if h not in stored),
        key=lambda pair: len(pair[1]),
    )
    if not todo:
        return 0, 0.0
    embedder = embedder_load(model_name, settings.EMBEDDING_BATCH_SIZE)
    batch = max(1, int(settings.EMBEDDING_BATCH_SIZE))
    embedded, encode_seconds = 0, 0.0
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        started = time.perf_counter()
        vectors = embedder.encode([t for _, t in part])
        encode_seconds += time.perf_counter() - started
        with transaction.atomic():
            if still_owned is not None and not still_owned(len(part)):
                transaction.set_rollback(True)
                return embedded, encode_seconds
            Embedding.objects.bulk_create(
                [
                    Embedding(
                        model_name=model_name,
                        content_hash=h,
                        dim=embedder.dim,
                        vector=vector_to_bytes(v),
                    )
                    for (h, _), v in zip(part, vectors, strict=True)
                ],
                ignore_conflicts=True,
                batch_size=1000,
            )
        embedded += len(part)
    return embedded, encode_seconds


def embeddings_embed_missing(*, project: Project, model_name: str, item_ids=None) -> int:
    """Embed, in this process, the missing texts of the project's items (only `item_ids`, if
    given). For small sets: training embeds the few labelled items not embedded yet."""
    items = _missing(project, model_name)
    if item_ids is not None:
        items = items.filter(pk__in=list(item_ids))
    pairs = list(items.values_list("content_hash", "text"))
    return embed_texts_missing(model_name=model_name, pairs=pairs)[0]


# ---- the job ------------------------------------------------------------------------------------


def _plan(job: Job, model_name: str) -> bool:
    """Cut the job into chunks (once). Returns True if this call planned it."""
    if EmbeddingChunk.objects.filter(job=job).exists():
        return False
    ids = list(_missing(job.project, model_name).order_by("id").values_list("id", flat=True))
    random.Random(int(job.params.get("seed", job.pk))).shuffle(ids)
    size = max(1, int(settings.EMBEDDING_CHUNK))
    first = max(1, size // 8)
    bounds = [0, min(first, len(ids))]
    while bounds[-1] < len(ids):
        bounds.append(min(bounds[-1] + size, len(ids)))
    chunks = [
        EmbeddingChunk(job=job, number=n, item_ids=ids[lo:hi])
        for n, (lo, hi) in enumerate(itertools.pairwise(bounds))
        if hi > lo
    ]
    with transaction.atomic():
        EmbeddingChunk.objects.bulk_create(chunks, ignore_conflicts=True)
        job_progress(
            job=job,
            done=0,
            total=len(ids),
            message=f"Embedding {len(ids):,} items with {model_name} in {len(chunks)} chunks",
        )
    return True


def _plan_more(job: Job, model_name: str) -> bool:
    """Add chunks for the project's items still missing a vector and queue a lane for them.
    Returns False when nothing is missing."""
    from models_app.tasks import embed_task_enqueue

    ids = list(_missing(job.project, model_name).order_by("id").values_list("id", flat=True))
    if not ids:
        return False
    size = max(1, int(settings.EMBEDDING_CHUNK))
    start = (EmbeddingChunk.objects.filter(job=job).aggregate(n=Max("number"))["n"] or 0) + 1
    with transaction.atomic():
        EmbeddingChunk.objects.bulk_create(
            [
                EmbeddingChunk(job=job, number=start + n, item_ids=ids[lo : lo + size])
                for n, lo in enumerate(range(0, len(ids), size))
            ],
            ignore_conflicts=True,
        )
        Job.objects.filter(pk=job.pk).update(progress_total=F("progress_total") + len(ids))
        transaction.on_commit(lambda: embed_task_enqueue(job_id=job.pk))
    return True


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.EMBEDDING_CHUNK_STALE_SECONDS)


def _claimable(job: Job):
    return EmbeddingChunk.objects.filter(job=job).filter(
        Q(status=Chunk.PENDING) | Q(status=Chunk.RUNNING, heartbeat_at__lt=_stale_before())
    )


def _claim(job: Job) -> tuple[EmbeddingChunk, str] | None:
    """The next chunk of the job for this run, claimed by compare-and-set, or None."""
    for _ in range(20):
        candidate = _claimable(job).order_by("number").first()
        if candidate is None:
            return None
        token = uuid.uuid4().hex
        claimed = (
            EmbeddingChunk.objects.filter(pk=candidate.pk, status=candidate.status)
            .filter(token=candidate.token)
            .update(
                status=Chunk.RUNNING,
                token=token,
                heartbeat_at=timezone.now(),
                attempts=F("attempts") + 1,
            )
        )
        if claimed:
            candidate.refresh_from_db()
            return candidate, token
    return None


def _process(job: Job, chunk: EmbeddingChunk, token: str, model_name: str) -> bool:
    """Embed the chunk's missing texts; True if it was finished by this run."""
    pairs = list(Item.objects.filter(pk__in=chunk.item_ids).values_list("content_hash", "text"))
    if chunk.number == 0:
        # The label prompts too (not counted as items): the first ranking's zero-shot
        # suggestions then read them from the store instead of waiting for the model.
        from models_app.services.zero_shot import zero_shot_label_pairs

        embed_texts_missing(model_name=model_name, pairs=zero_shot_label_pairs(project=job.project))

    def still_owned(n: int) -> bool:
        # Each batch moves the job's bar (a few seconds of work), in the batch's transaction.
        now = timezone.now()
        owned = EmbeddingChunk.objects.filter(pk=chunk.pk, token=token).update(
            heartbeat_at=now, embedded=F("embedded") + n
        )
        if owned:
            Job.objects.filter(pk=job.pk).update(
                heartbeat_at=now, progress_done=F("progress_done") + n
            )
        return bool(owned)

    embed_texts_missing(model_name=model_name, pairs=pairs, still_owned=still_owned)
    with transaction.atomic():
        embedded = (
            EmbeddingChunk.objects.filter(pk=chunk.pk, token=token)
            .values_list("embedded", flat=True)
            .first()
        )
        if embedded is None:  # taken over by another run
            return False
        EmbeddingChunk.objects.filter(pk=chunk.pk, token=token).update(
            status=Chunk.DONE, finished_at=timezone.now()
        )
        # Items whose text was stored already (another project, a duplicate) count as done too.
        Job.objects.filter(pk=job.pk).update(
            progress_done=F("progress_done") + max(0, len(chunk.item_ids) - embedded),
            heartbeat_at=timezone.now(),
        )
    return True


def _progress_message(job: Job, model_name: str) -> None:
    job.refresh_from_db(fields=["progress_done", "progress_total"])
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        message=f"Embedded {job.progress_done:,} of {job.progress_total or 0:,} items "
        f"with {model_name}"
    )


def _maybe_rank_early(job: Job, chunk: EmbeddingChunk) -> None:
    """Queue a ranking after the first chunk and whenever the done chunks reach a power of two,
    so the queue is ranked on what is embedded long before the job ends."""
    if not job.params.get("then_rank", True):
        return
    done = EmbeddingChunk.objects.filter(job=job, status=Chunk.DONE).count()
    remaining = _claimable(job).exists() or (
        EmbeddingChunk.objects.filter(job=job, status=Chunk.RUNNING).exists()
    )
    if remaining and done & (done - 1) == 0:  # 1, 2, 4, 8, ...
        from active_learning.services.ranking import ranking_schedule

        with transaction.atomic():
            ranking_schedule(
                project=job.project, reason=f"embedded {done} chunk{'' if done == 1 else 's'}"
            )


def _finish(job: Job, model_name: str) -> bool:
    """If every chunk is done, write the snapshot, mark the job succeeded and queue a ranking
    (once: under the job's row lock). Returns True when the job is finished."""
    from models_app.services.vectors import VectorsMissing, vectors_rebuild

    if EmbeddingChunk.objects.filter(job=job).exclude(status=Chunk.DONE).exists():
        return False
    # Outside the lock (it only reads, and replaces the snapshot atomically): two lanes that
    # finish together may both write it; readers always see a complete one.
    try:
        vectors_rebuild(project=job.project, model_name=model_name)
    except VectorsMissing:
        # Items imported while the job ran (their import found this job and did not queue
        # another): this job embeds them too, in more chunks.
        if _plan_more(job, model_name):
            return False
        raise
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            return True
        totals = EmbeddingChunk.objects.filter(job=job).aggregate(embedded=Sum("embedded"))
        embedded = int(totals["embedded"] or 0)
        seconds = (timezone.now() - (locked.started_at or timezone.now())).total_seconds()
        job_succeed(
            job=locked,
            result={
                "model": model_name,
                "items": locked.progress_total or 0,
                "embedded": embedded,
                "chunks": EmbeddingChunk.objects.filter(job=job).count(),
                "seconds": round(seconds, 1),
            },
            message=f"Embedded {embedded:,} distinct texts with {model_name}",
        )
        if locked.params.get("then_rank", True):
            from active_learning.services.ranking import ranking_schedule

            ranking_schedule(project=job.project, reason="embedded")
    return True


def embeddings_run(*, job_id: int, requeue: bool = True) -> Job | None:
    """One lane of embedding job `job_id`: plan it if needed (and queue the other lanes),
    embed one chunk, then queue this lane again or finish the job. With ``requeue=False``
    nothing is queued (see `embeddings_run_to_end`)."""
    from models_app.tasks import embed_task_enqueue

    if not requeue:

        def embed_task_enqueue(*, job_id: int) -> None:
            return None

    job = job_start(job_id=job_id, exclusive=False)  # lanes share the job
    if job is None:
        return None
    model_name = job.params.get("model") or embedding_model_name()
    if _plan(job, model_name):
        lanes = min(
            max(1, int(settings.EMBEDDING_PARALLEL_CHUNKS)),
            EmbeddingChunk.objects.filter(job=job).count(),
        )
        for _ in range(lanes - 1):
            transaction.on_commit(lambda: embed_task_enqueue(job_id=job_id))
    claimed = _claim(job)
    if claimed is not None:
        chunk, token = claimed
        if _process(job, chunk, token, model_name):
            _progress_message(job, model_name)
            _maybe_rank_early(job, chunk)
        if _claimable(job).exists():
            # To the back of the queue: other projects' jobs get their turn between chunks.
            transaction.on_commit(lambda: embed_task_enqueue(job_id=job_id))
            return job
    _finish(job, model_name)
    job.refresh_from_db()
    return job


def embeddings_run_to_end(*, job_id: int) -> Job:
    """Run embedding job `job_id` in this process, chunk after chunk, until it is finished (a
    benchmark or a command that wants the vectors now; workers run lanes instead)."""
    while True:
        job = embeddings_run(job_id=job_id, requeue=False)
        if job is None or job.is_finished:
            return Job.objects.get(pk=job_id)


def embedding_jobs_resume_stale() -> list[int]:
    """Periodic (beat): queue a lane for every unfinished embedding job that went silent (all
    its workers died), so it completes without anyone noticing. Returns the job ids."""
    from models_app.tasks import embed_task_enqueue

    stale = _stale_before()
    jobs = list(
        Job.objects.filter(
            kind=Job.Kind.EMBED,
            status__in=[Job.Status.PENDING, Job.Status.RUNNING],
        )
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale))
        .values_list("pk", flat=True)
    )
    for job_id in jobs:
        embed_task_enqueue(job_id=job_id)
    return jobs


def _embedding_job_active(project: Project) -> bool:
    return Job.objects.filter(jobs_alive_q(), project=project, kind=Job.Kind.EMBED).exists()


def vectors_ready(*, project: Project, model_name: str, need=None):
    """The project's vectors: the snapshot when every item is embedded. Otherwise, while an
    embedding job works on the project (or when more than two chunks are missing, after
    queueing one), the vectors stored so far, after embedding inline the items in `need` (by
    default those with a final label: what training reads) that have none yet; a handful of
    missing items are embedded inline."""
    from models_app.services.vectors import VectorsMissing, vectors_available, vectors_load

    try:
        return vectors_load(project=project, model_name=model_name)
    except VectorsMissing:
        pass
    missing = embeddings_missing_count(project=project, model_name=model_name)
    if missing <= 2 * settings.EMBEDDING_CHUNK and not _embedding_job_active(project):
        embeddings_embed_missing(project=project, model_name=model_name)
        return vectors_load(project=project, model_name=model_name)
    if not _embedding_job_active(project):
        with transaction.atomic():
            embeddings_schedule(project=project)
    if need is None:
        need = Item.objects.filter(project=project, final_labels__isnull=False).values_list(
            "pk", flat=True
        )
    embeddings_embed_missing(project=project, model_name=model_name, item_ids=need)
    return vectors_available(project=project, model_name=model_name)
