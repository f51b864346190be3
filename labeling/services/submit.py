"""The database steps of a submit (see `annotation_submit`).

PostgreSQL: one statement, the function `labeling_annotation_submit` (migrations labeling/0006,
0011):
it locks the item, reads what the submit decides on in a new snapshot, and either writes the
annotation, its history event, the assignment and the item's counters, or writes nothing and
says why. Other backends: read the state in one statement inside the caller's IMMEDIATE
transaction, then write through the ORM.

The SQL is raw because this is the hottest path of the product (every label an annotator gives)
and the ORM would spend more time compiling these statements than the database spends running
them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Case, F, Value, When

from labeling.models import Annotation, AnnotationEvent, Assignment, Item, Label
from labeling.services.db import fetch_one_guarded, guarded_project_sql

Status = Assignment.Status

_ITEM = Item._meta.db_table
_ASSIGNMENT = Assignment._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_LABEL = Label._meta.db_table


@dataclass(frozen=True)
class SubmitState:
    annotation_count: int
    annotations_wanted: int | None
    is_gold: bool
    is_open: bool
    live_lease: bool  # the user holds an unexpired lease on the item
    served: bool  # the user was handed the item (has an assignment on it, in any state)
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
    """Everything a submit decides on, in one statement, or None if the item is not in the
    project. Other backends than PostgreSQL: call inside the submit's IMMEDIATE transaction."""
    marks = ", ".join(["%s"] * len(labels))
    sql = f"""
        SELECT i.annotation_count, i.annotations_wanted, i.is_gold, i.status = 'open',
               CASE WHEN a.status = 'leased' AND a.expires_at > %s THEN 1 ELSE 0 END,
               CASE WHEN a.id IS NULL THEN 0 ELSE 1 END,
               (SELECT COUNT(*) FROM {_ASSIGNMENT} o
                 WHERE o.item_id = i.id AND o.status = 'leased' AND o.expires_at > %s
                   AND o.user_id <> %s),
               (SELECT MIN(an.id) FROM {_ANNOTATION} an
                 WHERE an.item_id = i.id AND an.annotator_id = %s),
               (SELECT COUNT(*) FROM {_LABEL} l WHERE l.project_id = %s AND l.value IN ({marks}))
          FROM {_ITEM} i
          LEFT JOIN {_ASSIGNMENT} a ON a.item_id = i.id AND a.user_id = %s
         WHERE i.id = %s AND i.project_id = %s"""
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
        served=bool(row[5]),
        others_live=row[6],
        existing_annotation_id=row[7],
        known_labels=row[8],
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


@dataclass(frozen=True)
class SubmitOutcome:
    """What `labeling_annotation_submit` did: `created` (and wrote everything), or why it wrote
    nothing: `not_found`, `unknown_labels`, `existing` (the user's earlier answer is
    `annotation_id`), `not_served` (the item was never handed to the user), `conflict`,
    `bad_suggestion`."""

    outcome: str
    annotation_id: int | None
    annotation_count: int | None  # after the write
    annotations_wanted: int | None
    is_gold: bool | None
    final_changed: bool | None  # k == 1: the annotation became the item's final label


def submit_postgresql(
    *,
    project,
    user_id: int,
    item_id: int,
    labels: Sequence[str],
    time_spent_ms: int,
    suggestion_id: int | None,
    now,
) -> SubmitOutcome:
    """The whole submit decision and write on PostgreSQL, in one statement (its own
    transaction unless the caller has one open)."""
    sql = (
        f"SELECT * FROM labeling_annotation_submit({guarded_project_sql()}, %(user)s::integer,"
        " %(item)s::bigint, %(labels)s::jsonb, %(ms)s::integer, %(suggestion)s::bigint,"
        " %(k)s::integer, %(now)s)"
    )
    params = {
        "project": project.pk,
        "user": user_id,
        "item": item_id,
        "labels": json.dumps(list(labels)),
        "ms": time_spent_ms,
        "suggestion": suggestion_id,
        "k": project.annotations_per_item,
        "now": now,
    }
    # Under a statement guard (the API's fast path), GuardFailed if it did not hold.
    return SubmitOutcome(*fetch_one_guarded(sql, params))


def submit_write(*, annotation: Annotation, k: int, is_gold: bool, set_final: bool, now) -> None:
    """Other backends than PostgreSQL: write a new annotation (sets `annotation.pk`), its
    CREATE event, the user's assignment (submitted), and the item: count + 1, closed at k (gold
    items stay open), and with `set_final` the final label with its lineage."""
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
