"""Aggregation of a project's annotations into final labels, as a coalesced background job.

Which items aggregation settles (the rest is left to whoever wrote it):
- an item with at least as many annotations as its k (``annotations_wanted`` or the project's
  k) gets a final label from the project's method, unless it is gold (final = its gold labels,
  lineage ``gold``) or has an active adjudication (the reviewer's decision is kept, and put
  back if something cleared it);
- exception: in a project whose k is 1, an item whose own k is 1 and that has a single
  annotation is the core's (lineage ``single_annotator``) and is not touched;
- an item with fewer annotations than its k has no final label yet: a final label written by
  aggregation or by the core's single-annotator rule is cleared (e.g. k was raised, or the
  core labelled the first of three annotations); finals from other sources (import,
  auto-accepted pre-labels) are kept until the item is complete.
- when the result is a tie (and the project adjudicates ties) or its confidence is below the
  project's threshold, ``final_labels`` is null and ``final_lineage`` says
  ``needs_adjudication: true`` with the ``reason`` and the ``proposed`` labels: the item waits
  for a reviewer.

Every model is fitted on all annotations of the project (also those of incomplete items), so
reliability estimates use every answer. Multi-label projects: one binary vote per label (see
`quality.aggregation.aggregate_multilabel`).

Coalescing: `aggregation_request` flips ``QualitySettings.aggregation_requested_at`` from null
in one conditional UPDATE; only the request that flipped it creates a Job and queues the task
(after a delay). The job clears the flag when it starts, so changes made while it runs queue
exactly one more job. Never one task per click.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import Annotation, Item, Job, Project
from labeling.services.hooks import after_final_labels_changed
from labeling.services.jobs import job_create, job_fail, job_start, job_succeed
from quality import aggregation as agg
from quality.models import Adjudication, AnnotatorReliability, QualitySettings
from quality.services.settings import quality_settings_get

logger = logging.getLogger(__name__)

# Lineage methods aggregation may overwrite or clear.
OWNED_METHODS = ("majority_vote", "dawid_skene", "one_coin", "gold", "single_annotator")
AGGREGATION_METHODS = ("majority_vote", "dawid_skene", "one_coin")


@dataclass
class ProjectAnnotations:
    """A project's annotations as arrays (codes index `labels` and `annotators`)."""

    labels: list[str]
    annotation_ids: np.ndarray
    item_ids: np.ndarray  # database ids, one per annotation
    annotator_ids: np.ndarray  # database ids, one per annotation
    chosen: np.ndarray  # (n_annotations, n_labels) bool
    created_at: list  # datetimes, one per annotation
    skipped_unknown: int  # annotations with a label no longer in the label set


def project_annotations_load(*, project: Project, with_times: bool = False) -> ProjectAnnotations:
    labels = list(project.labels.order_by("order", "id").values_list("value", flat=True))
    index = {value: i for i, value in enumerate(labels)}
    fields = ["id", "item_id", "annotator_id", "labels"] + (["created_at"] if with_times else [])
    rows = list(Annotation.objects.filter(project=project).order_by("id").values_list(*fields))
    n = len(rows)
    chosen = np.zeros((n, len(labels)), dtype=bool)
    keep = np.ones(n, dtype=bool)
    for row_number, row in enumerate(rows):
        values = row[3] if isinstance(row[3], list) else [row[3]]
        codes = [index.get(v) for v in values]
        if not codes or any(c is None for c in codes):
            keep[row_number] = False
            continue
        chosen[row_number, codes] = True
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    item_ids = np.array([r[1] for r in rows], dtype=np.int64)
    annotator_ids = np.array([r[2] for r in rows], dtype=np.int64)
    created = [r[4] for r in rows] if with_times else []
    if not keep.all():
        created = [c for c, k in zip(created, keep, strict=False) if k] if with_times else []
    return ProjectAnnotations(
        labels=labels,
        annotation_ids=ids[keep],
        item_ids=item_ids[keep],
        annotator_ids=annotator_ids[keep],
        chosen=chosen[keep],
        created_at=created,
        skipped_unknown=int((~keep).sum()),
    )


@dataclass
class Decision:
    item_ids: np.ndarray  # database ids of items with at least one annotation
    chosen: np.ndarray  # (n, n_labels) bool: the aggregated label set
    confidence: np.ndarray
    tie: np.ndarray
    n_annotations: np.ndarray
    worker_ids: np.ndarray  # database ids of annotators
    worker_skill: np.ndarray
    worker_confusion: np.ndarray | None
    worker_counts: np.ndarray
    method: str
    n_iter: int


def _run_method(*, data: ProjectAnnotations, method: str, multi_label: bool, gold_by_item: dict):
    item_db, item_codes = np.unique(data.item_ids, return_inverse=True)
    worker_db, worker_codes = np.unique(data.annotator_ids, return_inverse=True)
    n_labels = len(data.labels)
    counts = np.bincount(worker_codes, minlength=worker_db.size)
    if multi_label:
        gold = None
        if gold_by_item:
            gold = np.full((item_db.size, n_labels), -1, dtype=np.int64)
            for i, item_id in enumerate(item_db.tolist()):
                if item_id in gold_by_item:
                    gold[i] = gold_by_item[item_id]
        result = agg.aggregate_multilabel(
            item=item_codes,
            worker=worker_codes,
            chosen=data.chosen.astype(np.int64),
            n_items=item_db.size,
            n_workers=worker_db.size,
            method=method,
            gold=gold,
        )
        return Decision(
            item_ids=item_db,
            chosen=result.chosen,
            confidence=result.confidence,
            tie=result.tie,
            n_annotations=result.n_annotations,
            worker_ids=worker_db,
            worker_skill=result.worker_skill,
            worker_confusion=None,
            worker_counts=counts,
            method=method,
            n_iter=0,
        )
    label_codes = data.chosen.argmax(axis=1) if data.chosen.size else np.zeros(0, np.int64)
    triples = agg.Triples.of(
        item=item_codes,
        worker=worker_codes,
        label=label_codes,
        n_items=item_db.size,
        n_workers=worker_db.size,
        n_labels=n_labels,
    )
    gold = None
    if gold_by_item:
        gold = np.full(item_db.size, -1, dtype=np.int64)
        for i, item_id in enumerate(item_db.tolist()):
            if item_id in gold_by_item:
                gold[i] = int(np.argmax(gold_by_item[item_id]))
    result = agg.aggregate(triples, method=method, gold=gold)
    chosen = np.zeros((item_db.size, n_labels), dtype=bool)
    has = result.labels >= 0
    chosen[np.flatnonzero(has), result.labels[has]] = True
    return Decision(
        item_ids=item_db,
        chosen=chosen,
        confidence=result.confidence,
        tie=result.tie,
        n_annotations=result.n_annotations,
        worker_ids=worker_db,
        worker_skill=result.worker_skill,
        worker_confusion=result.worker_confusion,
        worker_counts=counts,
        method=method,
        n_iter=result.n_iter,
    )


def _gold_vector(labels: list[str], gold_labels) -> np.ndarray | None:
    if not isinstance(gold_labels, list):
        return None
    index = {v: i for i, v in enumerate(labels)}
    vector = np.zeros(len(labels), dtype=np.int64)
    for value in gold_labels:
        if value not in index:
            return None
        vector[index[value]] = 1
    return vector


def _same(old_labels, old_conf, old_lineage, new_labels, new_conf, new_lineage) -> bool:
    if old_labels != new_labels or old_lineage != new_lineage:
        return False
    if old_conf is None or new_conf is None:
        return old_conf is new_conf
    return abs(old_conf - new_conf) < 1e-9


def project_aggregate(*, project: Project, job: Job | None = None) -> dict:
    """Recompute every final label aggregation owns (see the module docstring) and write the
    changed ones in bulk. Returns a summary for the job's result. Idempotent."""
    quality = quality_settings_get(project=project)
    method = quality.aggregation_method
    data = project_annotations_load(project=project)
    labels = data.labels
    item_rows = list(
        Item.objects.filter(project=project)
        .filter(
            Q(annotation_count__gt=0)
            | Q(is_gold=True)
            | Q(final_lineage__method__in=OWNED_METHODS)
            | Q(adjudications__superseded_at__isnull=True, adjudications__isnull=False)
        )
        .distinct()
        .values_list(
            "id",
            "annotations_wanted",
            "is_gold",
            "gold_labels",
            "final_labels",
            "final_confidence",
            "final_lineage",
        )
    )
    gold_by_item = {}
    for item_id, _, is_gold, gold_labels, *_ in item_rows:
        if is_gold:
            vector = _gold_vector(labels, gold_labels)
            if vector is not None:
                gold_by_item[item_id] = vector
    decision = None
    if data.annotation_ids.size:
        decision = _run_method(
            data=data,
            method=method,
            multi_label=project.multi_label,
            gold_by_item=gold_by_item if method == "one_coin" else {},
        )
    position = {} if decision is None else {int(i): n for n, i in enumerate(decision.item_ids)}
    # Annotation and annotator ids per item, for the lineage.
    order = np.argsort(data.item_ids, kind="stable")
    sorted_items = data.item_ids[order]
    bounds = np.searchsorted(sorted_items, decision.item_ids) if decision is not None else []
    ends = np.searchsorted(sorted_items, decision.item_ids, side="right") if decision else []
    active = dict(
        Adjudication.objects.filter(project=project, superseded_at__isnull=True).values_list(
            "item_id", "pk"
        )
    )
    adjudication_rows = {
        row.item_id: row
        for row in Adjudication.objects.filter(pk__in=list(active.values())).only(
            "id", "item_id", "labels", "reviewer_id", "annotation_ids", "reason"
        )
    }
    k_project = project.annotations_per_item
    changes: list[Item] = []
    counts = {"final": 0, "awaiting_adjudication": 0, "incomplete": 0, "gold": 0, "adjudicated": 0}
    for item_id, wanted, is_gold, gold_labels, old_labels, old_conf, old_lineage in item_rows:
        k_item = wanted or k_project
        n = position.get(item_id)
        n_ann = int(decision.n_annotations[n]) if n is not None else 0
        old_method = (old_lineage or {}).get("method")
        new = None  # (labels, confidence, lineage) or "skip"
        if item_id in adjudication_rows:
            row = adjudication_rows[item_id]
            new = (
                row.labels,
                1.0,
                {
                    "method": "adjudication",
                    "version": "1",
                    "adjudication": row.pk,
                    "reviewer": row.reviewer_id,
                    "reason": row.reason,
                    "annotations": row.annotation_ids,
                },
            )
            counts["adjudicated"] += 1
        elif is_gold and gold_labels:
            new = (list(gold_labels), 1.0, {"method": "gold", "version": "1"})
            counts["gold"] += 1
        elif n is None or n_ann < k_item:
            ours = old_method in OWNED_METHODS or (old_lineage or {}).get("needs_adjudication")
            cores = old_method == "single_annotator" and k_project == 1 and k_item == 1
            if ours and not cores:
                new = (None, None, None)
            counts["incomplete"] += 1
        elif k_project == 1 and k_item == 1 and n_ann == 1:
            new = "skip"  # the core's single-annotator final label
        else:
            ids = data.annotation_ids[order[bounds[n] : ends[n]]]
            annotators = data.annotator_ids[order[bounds[n] : ends[n]]]
            proposed = [labels[c] for c in np.flatnonzero(decision.chosen[n])]
            confidence = round(float(decision.confidence[n]), 6)
            lineage = {
                "method": method,
                "version": agg.VERSION,
                "annotations": [int(x) for x in ids],
                "annotators": [int(x) for x in annotators],
            }
            tie = bool(decision.tie[n])
            low = confidence < quality.adjudication_threshold
            if (tie and quality.adjudicate_ties) or low:
                lineage.update(
                    needs_adjudication=True,
                    reason="tie" if tie and quality.adjudicate_ties else "low_confidence",
                    proposed=proposed,
                )
                new = (None, confidence, lineage)
                counts["awaiting_adjudication"] += 1
            else:
                if tie:
                    lineage["tie"] = True
                new = (proposed, confidence, lineage)
                counts["final"] += 1
        if new is None or new == "skip":
            continue
        if _same(old_labels, old_conf, old_lineage, *new):
            continue
        changes.append(
            Item(pk=item_id, final_labels=new[0], final_confidence=new[1], final_lineage=new[2])
        )
    changed_ids = _write_finals(project=project, changes=changes)
    if decision is not None:
        _write_reliability(project=project, decision=decision, labels=labels)
    return {
        "method": method,
        "version": agg.VERSION,
        "annotations": int(data.annotation_ids.size),
        "items_changed": len(changed_ids),
        "iterations": 0 if decision is None else decision.n_iter,
        "skipped_unknown_labels": data.skipped_unknown,
        **counts,
    }


def _write_finals(*, project: Project, changes: list[Item]) -> list[int]:
    """Bulk-write final labels in batches. Each batch locks its item rows and re-checks active
    adjudications inside its transaction, so a reviewer's decision taken while the job ran is
    never overwritten (adjudication_decide takes the same row lock)."""
    now = timezone.now()
    written: list[int] = []
    size = max(1, settings.QUALITY_WRITE_BATCH_SIZE)
    for start in range(0, len(changes), size):
        batch = changes[start : start + size]
        ids = [item.pk for item in batch]
        with transaction.atomic():
            list(Item.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
            adjudicated = dict(
                Adjudication.objects.filter(
                    item_id__in=ids, superseded_at__isnull=True
                ).values_list("item_id", "pk")
            )
            batch = [
                item
                for item in batch
                if item.pk not in adjudicated
                or (item.final_lineage or {}).get("adjudication") == adjudicated[item.pk]
            ]
            for item in batch:
                item.updated_at = now
            Item.objects.bulk_update(
                batch, ["final_labels", "final_confidence", "final_lineage", "updated_at"]
            )
            batch_ids = [item.pk for item in batch]
            if batch_ids:
                after_final_labels_changed(project=project, item_ids=batch_ids)
            written.extend(batch_ids)
    return written


def _write_reliability(*, project: Project, decision: Decision, labels: list[str]) -> None:
    rows = []
    for n, worker_id in enumerate(decision.worker_ids.tolist()):
        skill = decision.worker_skill[n]
        confusion = None
        if decision.worker_confusion is not None:
            confusion = np.round(decision.worker_confusion[n], 6).tolist()
        rows.append(
            AnnotatorReliability(
                project=project,
                annotator_id=worker_id,
                method=decision.method,
                reliability=None if np.isnan(skill) else round(float(skill), 6),
                n_annotations=int(decision.worker_counts[n]),
                confusion=confusion,
            )
        )
    size = max(1, settings.QUALITY_WRITE_BATCH_SIZE)
    for start in range(0, len(rows), size):
        AnnotatorReliability.objects.bulk_create(
            rows[start : start + size],
            update_conflicts=True,
            unique_fields=["project", "annotator"],
            update_fields=["method", "reliability", "n_annotations", "confusion", "updated_at"],
        )
    AnnotatorReliability.objects.filter(project=project).exclude(
        annotator_id__in=decision.worker_ids.tolist()
    ).delete()


# --- the job ------------------------------------------------------------------------------------


def aggregation_request(
    *, project: Project, delay: int | None = None, user=None, force: bool = False
) -> Job | None:
    """Queue one aggregation job for the project unless one is already queued (coalescing).
    Returns the queued job (new, or the pending one). Call outside a transaction (e.g. from
    ``transaction.on_commit``)."""
    from quality.tasks import aggregate_task_enqueue

    row = quality_settings_get(project=project)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.QUALITY_AGGREGATION_STALE_SECONDS)
    flipped = (
        QualitySettings.objects.filter(pk=row.pk)
        .filter(Q(aggregation_requested_at__isnull=True) | Q(aggregation_requested_at__lt=stale))
        .update(aggregation_requested_at=now)
    )
    if not flipped:
        row.refresh_from_db(fields=["aggregation_job"])
        if not force:
            return row.aggregation_job
    job = job_create(
        kind=Job.Kind.AGGREGATE,
        project=project,
        params={"method": row.aggregation_method},
        created_by=user,
    )
    QualitySettings.objects.filter(pk=row.pk).update(aggregation_job=job)
    if delay is None:
        delay = settings.QUALITY_AGGREGATION_DELAY_SECONDS
    try:
        aggregate_task_enqueue(job_id=job.pk, countdown=delay)
    except Exception as exc:
        # The broker is down: say so on the job and let the next change try again.
        job_fail(job_id=job.pk, error=f"Could not queue the aggregation task: {exc}")
        QualitySettings.objects.filter(pk=row.pk).update(aggregation_requested_at=None)
        raise
    return job


def aggregation_request_on_commit(*, project: Project, delay: int | None = None) -> None:
    """Schedule `aggregation_request` for when the current transaction commits."""
    project_id = project.pk

    def request() -> None:
        target = Project.objects.filter(pk=project_id).first()
        if target is None:
            return
        try:
            aggregation_request(project=target, delay=delay)
        except Exception:
            logger.exception("Re-aggregation of project %s could not be queued.", project_id)

    transaction.on_commit(request)


def annotations_changed(*, project: Project, item_ids, items=None) -> None:
    """The hook's entry point: re-aggregate after commit if this project or item needs it.
    Projects with k == 1 get final labels from the core, except items with their own k > 1
    (overlap) and items holding several annotations (imported crowd labels). `items`, when the
    caller has them, carry the current `annotations_wanted` and `annotation_count`."""
    if project.annotations_per_item == 1:
        if items is not None:
            needs = any(
                (item.annotations_wanted or 1) > 1 or item.annotation_count > 1 for item in items
            )
        else:
            needs = (
                Item.objects.filter(pk__in=list(item_ids))
                .filter(Q(annotations_wanted__gt=1) | Q(annotation_count__gt=1))
                .exists()
            )
        if not needs:
            return
    aggregation_request_on_commit(project=project)


def aggregation_job_run(*, job_id: int) -> Job | None:
    """Run an aggregation job (the task calls this). Clears the project's request flag first,
    so annotations that arrive while it runs queue the next job."""
    job = job_start(job_id=job_id)
    if job is None:
        return None
    project = job.project
    QualitySettings.objects.filter(project=project, aggregation_job=job).update(
        aggregation_requested_at=None
    )
    result = project_aggregate(project=project, job=job)
    QualitySettings.objects.filter(project=project).update(aggregated_at=timezone.now())
    job_succeed(
        job=job,
        result=result,
        message=(
            f"{result['method']}: {result['items_changed']} final labels changed, "
            f"{result['awaiting_adjudication']} awaiting adjudication"
        ),
    )
    return job
