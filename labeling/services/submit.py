"""The two database steps of a submit (see `annotation_submit`): read the item's state under
its row lock in one statement, then write the annotation, its history event, the assignment and
the item's counters. On PostgreSQL the write is one statement (data-modifying CTEs); other
backends write through the ORM. Both are called inside the submit's transaction.

The SQL is raw because this is the hottest path of the product (every label an annotator gives)
and the ORM would spend more time compiling these statements than the database spends running
them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Case, F, Value, When

from labeling.models import Annotation, AnnotationEvent, Assignment, Item, Label

Status = Assignment.Status

_ITEM = Item._meta.db_table
_ASSIGNMENT = Assignment._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_EVENT = AnnotationEvent._meta.db_table
_LABEL = Label._meta.db_table


@dataclass(frozen=True)
class SubmitState:
    annotation_count: int
    annotations_wanted: int | None
    is_gold: bool
    is_open: bool
    live_lease: bool  # the user holds an unexpired lease on the item
    others_live: int  # unexpired leases of other users
    existing_annotation_id: int | None  # the user's earlier answer, if any
    known_labels: int  # how many of the submitted labels the project has

    def free_slots(self, k: int) -> int:
        """Slots left for this user: gold items always have one, closed items none."""
        if self.is_gold:
            return 1
        if not self.is_open:
            return 0
        return k - self.annotation_count - self.others_live


def submit_state(
    *, project, user_id: int, item_id: int, labels: Sequence[str], now
) -> SubmitState | None:
    """Everything a submit decides on, in one statement; on PostgreSQL it takes the item's row
    lock. None if the item is not in the project."""
    marks = ", ".join(["%s"] * len(labels))
    lock = " FOR UPDATE OF i" if connection.vendor == "postgresql" else ""
    sql = f"""
        SELECT i.annotation_count, i.annotations_wanted, i.is_gold, i.status = 'open',
               CASE WHEN a.status = 'leased' AND a.expires_at > %s THEN 1 ELSE 0 END,
               (SELECT COUNT(*) FROM {_ASSIGNMENT} o
                 WHERE o.item_id = i.id AND o.status = 'leased' AND o.expires_at > %s
                   AND o.user_id <> %s),
               (SELECT MIN(an.id) FROM {_ANNOTATION} an
                 WHERE an.item_id = i.id AND an.annotator_id = %s),
               (SELECT COUNT(*) FROM {_LABEL} l WHERE l.project_id = %s AND l.value IN ({marks}))
          FROM {_ITEM} i
          LEFT JOIN {_ASSIGNMENT} a ON a.item_id = i.id AND a.user_id = %s
         WHERE i.id = %s AND i.project_id = %s{lock}"""
    params = [now, now, user_id, user_id, project.pk, *labels, user_id, item_id, project.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return SubmitState(
        annotation_count=row[0],
        annotations_wanted=row[1],
        is_gold=bool(row[2]),
        is_open=bool(row[3]),
        live_lease=bool(row[4]),
        others_live=row[5],
        existing_annotation_id=row[6],
        known_labels=row[7],
    )


def single_final_fields(annotation: Annotation) -> dict:
    """The final label of an item with one annotator: that annotation, with its lineage."""
    return {
        "final_labels": annotation.labels,
        "final_confidence": 1.0,
        "final_lineage": {
            "method": "single_annotator",
            "version": "1",
            "annotations": [annotation.pk],
            "annotators": [annotation.annotator_id],
        },
    }


def submit_write(*, annotation: Annotation, k: int, is_gold: bool, set_final: bool, now) -> None:
    """Write a new annotation (sets `annotation.pk`), its CREATE event, the user's assignment
    (submitted), and the item: count + 1, closed at k (gold items stay open), and with
    `set_final` the final label with its lineage."""
    if connection.vendor == "postgresql":
        _write_postgresql(annotation=annotation, k=k, is_gold=is_gold, set_final=set_final, now=now)
    else:
        _write_orm(annotation=annotation, k=k, is_gold=is_gold, set_final=set_final, now=now)


def _write_postgresql(*, annotation: Annotation, k: int, is_gold: bool, set_final: bool, now):
    sets = ["annotation_count = it.annotation_count + 1", "updated_at = %(now)s"]
    if not is_gold:
        sets.append(
            "status = CASE WHEN it.annotation_count >= %(k)s - 1 THEN 'done' ELSE it.status END"
        )
    if set_final:
        sets += [
            "final_labels = %(labels)s::jsonb",
            "final_confidence = 1.0",
            """final_lineage = jsonb_build_object('method', 'single_annotator', 'version', '1',
                 'annotations', jsonb_build_array(ann.id),
                 'annotators', jsonb_build_array(%(user)s::bigint))""",
        ]
    sql = f"""
        WITH ann AS (
            INSERT INTO {_ANNOTATION} (created_at, updated_at, item_id, project_id, annotator_id,
                                       labels, time_spent_ms, suggestion_id)
            VALUES (%(now)s, %(now)s, %(item)s, %(project)s, %(user)s, %(labels)s::jsonb,
                    %(ms)s, %(suggestion)s)
            RETURNING id),
        event AS (
            INSERT INTO {_EVENT} (annotation_id_ref, item_id, annotator_id, action, labels,
                                  previous_labels, time_spent_ms, created_at)
            SELECT ann.id, %(item)s, %(user)s, %(create)s, %(labels)s::jsonb, NULL, %(ms)s,
                   %(now)s
              FROM ann),
        assignment AS (
            INSERT INTO {_ASSIGNMENT} (item_id, project_id, user_id, status, leased_at,
                                       expires_at, updated_at)
            VALUES (%(item)s, %(project)s, %(user)s, %(submitted)s, %(now)s, %(now)s, %(now)s)
            ON CONFLICT (item_id, user_id) DO UPDATE
               SET status = EXCLUDED.status, leased_at = EXCLUDED.leased_at,
                   expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at),
        item AS (
            UPDATE {_ITEM} it SET {", ".join(sets)}
              FROM ann WHERE it.id = %(item)s)
        SELECT id FROM ann"""
    params = {
        "now": now,
        "item": annotation.item_id,
        "project": annotation.project_id,
        "user": annotation.annotator_id,
        "labels": json.dumps(annotation.labels),
        "ms": annotation.time_spent_ms,
        "suggestion": annotation.suggestion_id,
        "create": AnnotationEvent.Action.CREATE.value,
        "submitted": Status.SUBMITTED.value,
        "k": k,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (annotation.pk,) = cursor.fetchone()
    annotation._state.adding = False
    annotation._state.db = connection.alias


def _write_orm(*, annotation: Annotation, k: int, is_gold: bool, set_final: bool, now) -> None:
    from labeling.services.queue import assignment_upsert

    annotation.save(force_insert=True)
    AnnotationEvent.objects.create(
        annotation_id_ref=annotation.pk,
        item_id=annotation.item_id,
        annotator_id=annotation.annotator_id,
        action=AnnotationEvent.Action.CREATE,
        labels=annotation.labels,
        time_spent_ms=annotation.time_spent_ms,
    )
    assignment_upsert(
        project=annotation.project,
        user_id=annotation.annotator_id,
        item_id=annotation.item_id,
        status=Status.SUBMITTED,
        leased_at=now,
        expires_at=now,
    )
    updates = {"annotation_count": F("annotation_count") + 1, "updated_at": now}
    if not is_gold:
        updates["status"] = Case(
            When(annotation_count__gte=k - 1, then=Value(Item.Status.DONE)),
            default=F("status"),
        )
    if set_final:
        updates.update(single_final_fields(annotation))
    Item.objects.filter(pk=annotation.item_id).update(**updates)
