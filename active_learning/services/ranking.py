"""Scoring and ranking: after a promotion (or at cold start), re-rank the project's queue.

The job reads the project's vector snapshot, scores every unlabeled item with the active model
in batches, writes ``Item.priority`` under the project's query strategy (first, so the queue is
re-ranked as early as possible), then stores the predictions with the model version.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from active_learning.models import ActiveLearningSettings, MinedError
from active_learning.services.bulk import (
    item_priorities_write,
    predictions_write,
    scoring_batch_size,
)
from active_learning.strategies import (
    neighbour_boost,
    representative_priorities,
    uncertainty_priorities,
    zero_shot_cold_start,
)
from labeling.models import Annotation, Assignment, Item, Job, Prediction, Project
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from models_app.ml.training import probabilities_for
from models_app.models import ModelSettings, ModelVersion
from models_app.services.config import embedding_model_name
from models_app.services.embeddings import vectors_ready
from models_app.services.training import model_artifact_load
from models_app.services.vectors import VectorSet

logger = logging.getLogger(__name__)

# How many recent mined errors boost their neighbours at each re-rank.
_MINED_ERRORS_PER_RANK = 50
# Written priority = PRIORITY_EPOCH x ranking-job id + the strategy's priority (kept below
# PRIORITY_EPOCH): a newer ranking outranks every value an older one wrote, so the head of the
# queue can be written first and the tail after it without old values jumping the queue.
PRIORITY_EPOCH = 10.0


def _write_priorities(*, job: Job, item_ids: np.ndarray, local: np.ndarray, lap) -> int:
    """Write the head of the queue (RANKING_HEAD_SIZE best items) in one transaction, then
    the rest in another. Returns rows updated."""
    absolute = job.pk * PRIORITY_EPOCH + np.clip(local, 0.0, PRIORITY_EPOCH - 0.01)
    n = len(absolute)
    head_n = min(n, settings.RANKING_HEAD_SIZE)
    if head_n < n:
        head = np.argpartition(-absolute, head_n - 1)[:head_n]
        rest = np.ones(n, dtype=bool)
        rest[head] = False
    else:
        head, rest = np.arange(n), np.zeros(n, dtype=bool)
    updated = item_priorities_write(item_ids=item_ids[head], priorities=absolute[head])
    lap("write_head")
    updated += item_priorities_write(item_ids=item_ids[rest], priorities=absolute[rest])
    lap("write_tail")
    return updated


def verification_items_first(*, project: Project, job: Job) -> int:
    """Put the cascade's verification sample (auto-accepted labels kept open for a human to
    check) at the head of the queue: the measured precision of auto-acceptance rests on them,
    so they should not wait behind the whole pool. Returns how many."""
    return Item.objects.filter(
        project=project,
        status=Item.Status.OPEN,
        annotation_count=0,
        final_lineage__verification=True,
    ).update(priority=job.pk * PRIORITY_EPOCH + (PRIORITY_EPOCH - 0.005))


def al_settings_get(*, project: Project) -> ActiveLearningSettings:
    al_settings, _ = ActiveLearningSettings.objects.get_or_create(project=project)
    return al_settings


def ranking_schedule(*, project: Project, reason: str, user=None) -> Job:
    """Queue a re-rank of the project (scoring with the active model, or representative
    sampling at cold start), unless one is already waiting to start: that one will use whatever
    model is active when it runs."""
    from active_learning.tasks import rank_task_enqueue

    waiting = (
        Job.objects.filter(
            project=project, kind__in=[Job.Kind.SCORE, Job.Kind.RANK], status=Job.Status.PENDING
        )
        .order_by("-created_at")
        .first()
    )
    if waiting is not None:
        return waiting
    has_model = ModelVersion.objects.filter(project=project, status="active").exists()
    job = job_create(
        kind=Job.Kind.SCORE if has_model else Job.Kind.RANK,
        project=project,
        params={"reason": reason},
        created_by=user,
    )
    transaction.on_commit(lambda: rank_task_enqueue(job_id=job.pk))
    return job


class _PoolView:
    """Rows of the snapshot matrix seen through pool positions (read lazily from the mmap)."""

    def __init__(self, matrix: np.ndarray, rows: np.ndarray) -> None:
        self.matrix, self.rows = matrix, rows

    def __getitem__(self, index) -> np.ndarray:
        rows = self.rows[index]
        order = np.argsort(rows)
        out = np.empty((len(rows), self.matrix.shape[1]), dtype=np.float32)
        out[order] = self.matrix[rows[order]]
        return out

    def __len__(self) -> int:
        return len(self.rows)


def _mining_boost(*, project: Project, vectors: VectorSet, pool_mask: np.ndarray, al) -> np.ndarray:
    flagged = list(
        MinedError.objects.filter(project=project)
        .order_by("-created_at")
        .values_list("item_id", flat=True)[:_MINED_ERRORS_PER_RANK]
    )
    flagged = [i for i, ok in zip(flagged, np.isin(flagged, vectors.item_ids), strict=True) if ok]
    if not flagged or not al.mining_boost:
        return np.zeros(int(pool_mask.sum()))
    boost = neighbour_boost(
        matrix=vectors.matrix,
        queries=vectors.vectors(flagged),
        k=al.mining_neighbours,
        candidates=pool_mask,
        boost=al.mining_boost,
    )
    return boost[pool_mask]


def _labelled_ids(project: Project) -> np.ndarray:
    return np.fromiter(
        Item.objects.filter(project=project, final_labels__isnull=False).values_list(
            "id", flat=True
        ),
        dtype=np.int64,
    )


def ranking_run(*, job_id: int) -> Job | None:
    job = job_start(job_id=job_id)
    if job is None:
        return None
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: list[float] = [started]) -> None:  # noqa: B006
        now = time.perf_counter()
        timings[name] = round(now - since[0], 3)
        since[0] = now

    project = job.project
    al = al_settings_get(project=project)
    seed = ModelSettings.objects.filter(project=project).values_list("seed", flat=True).first() or 0
    model_name = embedding_model_name()
    job_progress(job=job, done=0, total=None, message="Reading vectors")
    vectors = vectors_ready(project=project, model_name=model_name)
    pool_mask = ~np.isin(vectors.item_ids, _labelled_ids(project))
    pool_rows = np.flatnonzero(pool_mask)
    pool_ids = vectors.item_ids[pool_rows]
    # Gold items get suggestions like every other item (never a priority: they are served by
    # the gold rate, not the queue): an item without one would give a honeypot away.
    gold_rows = _gold_rows(project=project, vectors=vectors, pool_mask=pool_mask)
    lap("load")
    active = ModelVersion.objects.filter(project=project, status="active").first()
    if active is None or active.embedding_model != model_name:
        why = "no active model" if active is None else "the active model used other vectors"
        return _cold_start_rank(
            job=job,
            project=project,
            vectors=vectors,
            pool_rows=pool_rows,
            pool_ids=pool_ids,
            gold_rows=gold_rows,
            al=al,
            seed=seed,
            model_name=model_name,
            why=why,
            lap=lap,
            timings=timings,
        )

    model = model_artifact_load(version=active)
    classes = active.classes
    total = len(pool_rows)
    batch = scoring_batch_size()
    proba = np.zeros((total, len(classes)), dtype=np.float64)
    job_progress(
        job=job, done=0, total=total, message=f"Scoring {total} items with v{active.number}"
    )
    for start in range(0, total, batch):
        rows = pool_rows[start : start + batch]
        proba[start : start + len(rows)] = probabilities_for(
            model, np.asarray(vectors.matrix[rows]), classes
        )
        job_progress(job=job, done=start + len(rows))
    lap("score")
    priorities = uncertainty_priorities(
        strategy=al.strategy,
        proba=proba,
        vectors=_PoolView(vectors.matrix, pool_rows),
        diversity_batch=al.diversity_batch,
        seed=seed + active.number,
    )
    priorities = priorities + _mining_boost(
        project=project, vectors=vectors, pool_mask=pool_mask, al=al
    )
    lap("rank")
    updated = _write_priorities(job=job, item_ids=pool_ids, local=priorities, lap=lap)
    verification_items_first(project=project, job=job)
    job_progress(job=job, done=total, message="Queue re-ranked; storing predictions")
    if len(gold_rows):
        proba = np.vstack(
            [proba, probabilities_for(model, np.asarray(vectors.matrix[gold_rows]), classes)]
        )
    shown_ids = np.concatenate([pool_ids, vectors.item_ids[gold_rows]])
    best = proba.argmax(axis=1)
    labels = [classes[k] for k in best]
    confidence = proba[np.arange(len(best)), best]
    rounded = np.round(proba, 4).tolist()
    for start in range(0, len(shown_ids), batch):
        predictions_write(
            project_id=project.pk,
            source_id=active.source_id,
            source_version=str(active.number),
            item_ids=shown_ids[start : start + batch].tolist(),
            labels=labels[start : start + batch],
            confidences=confidence[start : start + batch],
            scores=(dict(zip(classes, row, strict=True)) for row in rounded[start : start + batch]),
            details={
                "model_version": active.number,
                "classifier": active.classifier,
                # What the labeling page says of the suggestion: "model v3, trained on 120 labels".
                "train_size": active.train_size,
                "label_count": active.label_count,
            },
        )
    _predictions_prune(project=project, version=active)
    _zero_shot_refresh(
        project=project,
        vectors=vectors,
        pool_rows=np.concatenate([pool_rows, gold_rows]),
        model_name=model_name,
        seed=seed,
    )
    lap("write_predictions")
    job_succeed(
        job=job,
        result={
            "mode": "model",
            "version": active.number,
            "strategy": al.strategy,
            "diversity_batch": al.diversity_batch,
            "pool": total,
            "updated": updated,
            **timings,
        },
        message=f"Scored {total} items with v{active.number}; queue ranked by {al.strategy}",
    )
    return job


def _gold_rows(*, project: Project, vectors: VectorSet, pool_mask: np.ndarray) -> np.ndarray:
    """Rows of the project's gold items in `vectors` that are not in the pool already."""
    gold = np.fromiter(
        Item.objects.filter(project=project, is_gold=True).values_list("id", flat=True),
        dtype=np.int64,
    )
    return np.flatnonzero(np.isin(vectors.item_ids, gold) & ~pool_mask)


def _cold_start_rank(
    *,
    job,
    project,
    vectors,
    pool_rows,
    pool_ids,
    gold_rows,
    al,
    seed,
    model_name,
    why,
    lap,
    timings,
) -> Job:
    """No usable model yet: zero-shot suggestions from the label set for every embedded item
    (gold items included), and a queue of representative items served round robin over the
    zero-shot classes (`zero_shot_cold_start`); plain representative sampling when the project
    has fewer than two labels. A project in file order keeps its order."""
    from models_app.services.zero_shot import zero_shot_predictions_write, zero_shot_scores

    embedded = len(vectors.item_ids)
    if project.queue_order == Project.QueueOrder.FILE:
        job_succeed(
            job=job,
            result={"mode": "file_order", "pool": len(pool_ids), **timings},
            message=f"Cold start ({why}): the queue keeps the file order, as the project asks",
        )
        return job
    pool = _PoolView(vectors.matrix, pool_rows)[np.arange(len(pool_rows))]
    representative = representative_priorities(
        vectors=pool, n_clusters=al.cold_start_clusters, seed=seed
    )
    shown_rows = np.concatenate([pool_rows, gold_rows])
    scored = zero_shot_scores(
        project=project, vectors=vectors, rows=shown_rows, model_name=model_name, seed=seed
    )
    proba = None
    if scored is not None:
        zs_model, classes, proba = scored
        priorities = zero_shot_cold_start(
            representative=representative, proba=proba[: len(pool_rows)]
        )
        mode = "zero_shot"
    else:
        priorities = representative
        mode = "representative"
    lap("rank")
    updated = _write_priorities(job=job, item_ids=pool_ids, local=priorities, lap=lap)
    verification_items_first(project=project, job=job)
    if proba is not None:
        zero_shot_predictions_write(
            project=project,
            item_ids=vectors.item_ids[shown_rows],
            proba=proba,
            classes=classes,
            model=zs_model,
        )
        lap("write_predictions")
    total = Item.objects.filter(project=project).count()
    partial = f" ({embedded:,} of {total:,} items embedded so far)" if embedded < total else ""
    how = (
        "zero-shot suggestions and representative sampling"
        if mode == "zero_shot"
        else "representative sampling"
    )
    job_succeed(
        job=job,
        result={
            "mode": "cold_start",
            "ranking": mode,
            "pool": len(pool_ids),
            "embedded": embedded,
            "items": total,
            "updated": updated,
            **(
                {
                    "zero_shot_temperature": zs_model.temperature,
                    "zero_shot_calibrated_on": zs_model.calibrated_on,
                }
                if proba is not None
                else {}
            ),
            **timings,
        },
        message=f"Cold start ({why}): {len(pool_ids):,} items ranked by {how}{partial}",
    )
    return job


# Above this many unlabeled items a re-rank does not rewrite the zero-shot suggestions too.
ZERO_SHOT_REFRESH_MAX = 50_000


def _zero_shot_refresh(*, project, vectors, pool_rows, model_name, seed) -> None:
    """With a model active, keep the zero-shot suggestions current (calibrated on the labels
    given since), so the labeling page can show whichever suggestion is more confident: an early
    model trained on a few dozen labels is often less sure, and less right, than the label
    descriptions. Skipped for large pools, where the model has long been the better source."""
    from models_app.services.zero_shot import zero_shot_predictions_write, zero_shot_scores

    if len(pool_rows) > ZERO_SHOT_REFRESH_MAX:
        return
    scored = zero_shot_scores(
        project=project, vectors=vectors, rows=pool_rows, model_name=model_name, seed=seed
    )
    if scored is not None:
        zs_model, classes, proba = scored
        zero_shot_predictions_write(
            project=project,
            item_ids=vectors.item_ids[pool_rows],
            proba=proba,
            classes=classes,
            model=zs_model,
        )


def _predictions_prune(*, project: Project, version: ModelVersion) -> None:
    """Drop the predictions of this project's classifier from versions other than `version`
    and the one promoted before it (the highest-numbered earlier version that was ever
    active), except those an annotator accepted (the lineage of their annotation) and those of
    items someone holds a lease on.

    A suggestion stays valid while it may be on an annotator's screen: the labeling page shows
    a leased item (and prefetches two more) with the suggestions read when it was leased, and
    accepting one sends its id, which the submit checks against this table. A promotion while
    an item is on screen must not make that answer fail."""
    previous = (
        ModelVersion.objects.filter(
            project=project, number__lt=version.number, promoted_at__isnull=False
        )
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    keep = [str(version.number), str(previous if previous is not None else version.number)]
    pred = Prediction._meta.db_table
    ann = Annotation._meta.db_table
    asg = Assignment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""DELETE FROM {pred} WHERE project_id = %s AND source_kind = %s AND source_id = %s
                  AND source_version NOT IN (%s, %s)
                  AND NOT EXISTS (SELECT 1 FROM {ann} a WHERE a.suggestion_id = {pred}.id)
                  AND NOT EXISTS (SELECT 1 FROM {asg} s
                                   WHERE s.item_id = {pred}.item_id AND s.status = %s)""",
            [
                project.pk,
                Prediction.SourceKind.MODEL,
                version.source_id,
                *keep,
                Assignment.Status.LEASED,
            ],
        )
