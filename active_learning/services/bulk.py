"""Bulk writes of a ranking job: item priorities and model predictions.

PostgreSQL: COPY into a temporary table, then one ``UPDATE ... FROM`` (priorities) or one
``INSERT ... ON CONFLICT DO UPDATE`` (predictions). Other backends: ``bulk_update`` /
``bulk_create(update_conflicts=True)`` in batches. Nothing is written row by row.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from labeling.models import Item, Prediction

_ORM_BATCH = 5000


# Above this many rows (PostgreSQL, outside a transaction) the write is split by id range over
# two connections, so the database updates on two cores instead of one.
_PARALLEL_MIN_ROWS = 200_000


def item_priorities_write(*, item_ids: np.ndarray, priorities: np.ndarray) -> int:
    """Set ``Item.priority`` of `item_ids` (aligned with `priorities`); rows whose priority does
    not change are not rewritten. Returns rows updated.

    One transaction, except for large writes on PostgreSQL outside a caller's transaction: two
    transactions on two connections over disjoint id ranges, run at the same time. If one
    fails, the other's rows keep their new priorities; that is safe for the queue because every
    ranking writes priorities above all older ones (see `ranking.PRIORITY_EPOCH`), and the
    failed job is rerun."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    priorities = np.asarray(priorities, dtype=np.float64)
    if not len(item_ids):
        return 0
    if connection.vendor == "postgresql":
        if len(item_ids) >= _PARALLEL_MIN_ROWS and not connection.in_atomic_block:
            return _priorities_postgres_parallel(item_ids, priorities)
        return _priorities_postgres(item_ids, priorities)
    updated = 0
    with transaction.atomic():
        for start in range(0, len(item_ids), _ORM_BATCH):
            batch = [
                Item(pk=int(i), priority=float(p))
                for i, p in zip(
                    item_ids[start : start + _ORM_BATCH],
                    priorities[start : start + _ORM_BATCH],
                    strict=True,
                )
            ]
            updated += Item.objects.bulk_update(batch, ["priority"])
    return updated


def _priorities_postgres_parallel(item_ids: np.ndarray, priorities: np.ndarray) -> int:
    order = np.argsort(item_ids, kind="stable")
    half = len(order) // 2
    first, second = order[:half], order[half:]
    outcome: dict[str, object] = {}

    def other_half() -> None:
        try:
            outcome["updated"] = _priorities_postgres(item_ids[second], priorities[second])
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=other_half, name="priorities-write")
    thread.start()
    try:
        updated = _priorities_postgres(item_ids[first], priorities[first])
    finally:
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return updated + int(outcome["updated"])


def _priorities_postgres(item_ids: np.ndarray, priorities: np.ndarray) -> int:
    table = Item._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE flywheel_priority (id bigint, priority double precision) "
            "ON COMMIT DROP"
        )
        with cursor.copy("COPY flywheel_priority (id, priority) FROM STDIN") as copy:
            for start in range(0, len(item_ids), 100_000):
                for row in zip(
                    item_ids[start : start + 100_000].tolist(),
                    priorities[start : start + 100_000].tolist(),
                    strict=True,
                ):
                    copy.write_row(row)
        cursor.execute(
            f"UPDATE {table} AS i SET priority = t.priority FROM flywheel_priority t "
            "WHERE i.id = t.id AND i.priority IS DISTINCT FROM t.priority"
        )
        updated = cursor.rowcount
        # Dropped here too: ON COMMIT DROP does not fire inside an enclosing transaction.
        cursor.execute("DROP TABLE flywheel_priority")
        return updated


def predictions_write(
    *,
    project_id: int,
    source_id: str,
    source_version: str,
    item_ids: Sequence[int],
    labels: Sequence[str],
    confidences: np.ndarray,
    scores: Iterable[dict] | None,
    details: dict,
    source_kind: str = Prediction.SourceKind.MODEL,
) -> int:
    """Upsert one prediction per item (unique per item, kind, source, version)."""
    scores = list(scores) if scores is not None else [None] * len(item_ids)
    if connection.vendor == "postgresql":
        return _predictions_postgres(
            project_id,
            source_id,
            source_version,
            item_ids,
            labels,
            confidences,
            scores,
            details,
            source_kind,
        )
    rows = [
        Prediction(
            item_id=int(i),
            project_id=project_id,
            source_kind=source_kind,
            source_id=source_id,
            source_version=source_version,
            labels=[label],
            confidence=float(c),
            scores=s,
            details=details,
        )
        for i, label, c, s in zip(item_ids, labels, confidences, scores, strict=True)
    ]
    with transaction.atomic():
        Prediction.objects.bulk_create(
            rows,
            batch_size=_ORM_BATCH,
            update_conflicts=True,
            unique_fields=["item", "source_kind", "source_id", "source_version"],
            update_fields=["labels", "confidence", "scores", "details"],
        )
    return len(rows)


def _predictions_postgres(
    project_id, source_id, source_version, item_ids, labels, confidences, scores, details, kind
) -> int:
    table = Prediction._meta.db_table
    details_json = json.dumps(details)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE flywheel_prediction (item_id bigint, labels jsonb, "
            "confidence double precision, scores jsonb) ON COMMIT DROP"
        )
        with cursor.copy(
            "COPY flywheel_prediction (item_id, labels, confidence, scores) FROM STDIN"
        ) as copy:
            for i, label, c, s in zip(item_ids, labels, confidences, scores, strict=True):
                copy.write_row(
                    (int(i), json.dumps([label]), float(c), None if s is None else json.dumps(s))
                )
        cursor.execute(
            f"""INSERT INTO {table} (item_id, project_id, source_kind, source_id, source_version,
                    labels, confidence, scores, details, created_at)
                SELECT item_id, %s, %s, %s, %s, labels, confidence, scores, %s::jsonb, now()
                  FROM flywheel_prediction
                ON CONFLICT (item_id, source_kind, source_id, source_version) DO UPDATE
                  SET labels = EXCLUDED.labels, confidence = EXCLUDED.confidence,
                      scores = EXCLUDED.scores, details = EXCLUDED.details""",
            [
                project_id,
                kind,
                source_id,
                source_version,
                details_json,
            ],
        )
        written = cursor.rowcount
        cursor.execute("DROP TABLE flywheel_prediction")
        return written


def scoring_batch_size() -> int:
    return settings.SCORING_BATCH_SIZE
