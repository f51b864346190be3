"""Annotations: submit, edit, retract (undo). Every change appends an AnnotationEvent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import NoReturn

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from labeling.errors import ApplicationError, ConflictError, NotFoundError, NotPermitted
from labeling.models import Annotation, AnnotationEvent, Assignment, Item, Prediction, Project
from labeling.services.hooks import after_annotations_changed, after_final_labels_changed
from labeling.services.queue import assignment_upsert, item_k
from labeling.services.submit import (
    single_final_fields,
    submit_postgresql,
    submit_state,
    submit_write,
)

Status = Assignment.Status


def _labels_shape(*, project: Project, labels: Sequence[str]) -> list[str]:
    """De-duplicate (keeping order) and check the count; no database access."""
    if isinstance(labels, str):
        labels = [labels]
    cleaned = list(dict.fromkeys(str(v) for v in labels))
    if not cleaned:
        raise ApplicationError("Choose at least one label.", {"field": "labels"})
    if not project.multi_label and len(cleaned) > 1:
        raise ApplicationError(
            "This project takes exactly one label per item.", {"field": "labels"}
        )
    return cleaned


def _clean_labels(*, project: Project, labels: Sequence[str]) -> list[str]:
    cleaned = _labels_shape(project=project, labels=labels)
    allowed = set(project.labels.values_list("value", flat=True))
    unknown = [v for v in cleaned if v not in allowed]
    if unknown:
        raise ApplicationError(
            f"Unknown label(s): {', '.join(unknown)}.", {"field": "labels", "unknown": unknown}
        )
    return cleaned


def _single_final(*, project: Project, item_id: int) -> None:
    """With k == 1 the one annotation is the final label (lineage: the annotation). Items
    with several annotators get final labels from aggregation instead; gold items keep their
    known answer."""
    item = Item.objects.only("annotations_wanted", "is_gold").get(pk=item_id)
    if item.is_gold or item_k(item=item, project=project) != 1:
        return
    after_final_labels_changed(project=project, item_ids=[item_id])
    annotation = Annotation.objects.filter(item_id=item_id).order_by("created_at").first()
    if annotation is None:
        Item.objects.filter(pk=item_id).update(
            final_labels=None, final_confidence=None, final_lineage=None
        )
        return
    Item.objects.filter(pk=item_id).update(**single_final_fields(annotation))


def annotation_submit(
    *,
    project: Project,
    user: AbstractBaseUser,
    item_id: int,
    labels: Sequence[str],
    time_spent_ms: int = 0,
    suggestion_id: int | None = None,
) -> Annotation:
    """Save the user's answer for an item they were handed.

    Accepted if the user holds a live lease, or (lease expired) if the item still has a free
    slot counting others' live leases; otherwise ConflictError. An item never handed to the
    user (no assignment of theirs: `queue_next_item` or an undo makes one) is refused with
    NotPermitted, gold items included, so nobody answers an item by id without being served
    it. Submitting twice edits the earlier answer instead of adding a second one.

    The hot path of the annotation loop. On PostgreSQL it is one statement (its own transaction,
    unless the caller has one open): the `labeling_annotation_submit` function locks the item,
    decides and writes. Other backends read and write in an IMMEDIATE transaction. The hooks run
    after the write; they only schedule work for after the commit (labeling/services/hooks.py).
    """
    cleaned = _labels_shape(project=project, labels=labels)
    time_spent_ms = max(0, int(time_spent_ms))
    if connection.vendor != "postgresql":
        return _submit_orm(
            project=project,
            user=user,
            item_id=item_id,
            labels=cleaned,
            time_spent_ms=time_spent_ms,
            suggestion_id=suggestion_id,
        )
    now = timezone.now()
    outcome = submit_postgresql(
        project=project,
        user_id=user.pk,
        item_id=item_id,
        labels=cleaned,
        time_spent_ms=time_spent_ms,
        suggestion_id=suggestion_id,
        now=now,
    )
    if outcome.outcome == "bad_suggestion" and _suggestion_gone(suggestion_id=suggestion_id):
        # Last resort (scoring keeps a suggestion that may be on screen, see
        # `active_learning.services.ranking._predictions_prune`): the answer is the
        # annotator's, so it is saved, without the lineage of a suggestion that no longer exists.
        suggestion_id = None
        outcome = submit_postgresql(
            project=project,
            user_id=user.pk,
            item_id=item_id,
            labels=cleaned,
            time_spent_ms=time_spent_ms,
            suggestion_id=None,
            now=now,
        )
    if outcome.outcome == "existing":
        existing = Annotation.objects.select_related("item__project").get(pk=outcome.annotation_id)
        return annotation_update(
            annotation=existing, user=user, labels=cleaned, time_spent_ms=time_spent_ms
        )
    if outcome.outcome != "created":
        _refuse(outcome=outcome.outcome, project=project, item_id=item_id, labels=cleaned)
    annotation = Annotation(
        pk=outcome.annotation_id,
        item_id=item_id,
        project=project,
        annotator=user,
        labels=cleaned,
        time_spent_ms=time_spent_ms,
        suggestion_id=suggestion_id,
        created_at=now,
        updated_at=now,
    )
    annotation._state.adding = False
    annotation._state.db = connection.alias
    _submitted(
        project=project,
        item_id=item_id,
        annotations_wanted=outcome.annotations_wanted,
        annotation_count=outcome.annotation_count,
        final_changed=outcome.final_changed,
    )
    return annotation


def _refuse(*, outcome: str, project: Project, item_id: int, labels: list[str]) -> NoReturn:
    """The error for a submit the database function turned down without writing."""
    if outcome == "not_found":
        raise NotFoundError("No such item in this project.", {"item": item_id})
    if outcome == "unknown_labels":
        _clean_labels(project=project, labels=labels)  # raises, naming the unknown labels
        # (unless the labels were added since: the submit may be sent again)
        raise ApplicationError("Unknown label(s).", {"field": "labels"})
    if outcome == "conflict":
        raise ConflictError(_EXPIRED_AND_TAKEN, {"item": item_id})
    if outcome == "not_served":
        raise NotPermitted(_NOT_SERVED, {"item": item_id})
    if outcome == "bad_suggestion":
        raise ApplicationError(_FOREIGN_SUGGESTION, {"field": "suggestion_id"})
    raise AssertionError(f"labeling_annotation_submit: unexpected outcome {outcome!r}")


_EXPIRED_AND_TAKEN = (
    "Your reservation on this item expired and other annotators have since completed it."
)
_FOREIGN_SUGGESTION = "That suggestion does not belong to this item."
_NOT_SERVED = "This item was not handed to you; ask for one with next/."


def _suggestion_gone(*, suggestion_id: int | None) -> bool:
    """The accepted suggestion was deleted since the item was shown (a suggestion of another
    item, which still exists, is refused instead: that is the client's mistake)."""
    return suggestion_id is not None and not Prediction.objects.filter(pk=suggestion_id).exists()


def _submitted(
    *,
    project: Project,
    item_id: int,
    annotations_wanted: int | None,
    annotation_count: int,
    final_changed: bool,
) -> None:
    """The hooks of a new annotation (`annotation_count` is the item's count after it)."""
    counted = Item(
        pk=item_id, annotations_wanted=annotations_wanted, annotation_count=annotation_count
    )
    after_annotations_changed(project=project, item_ids=[item_id], items=[counted])
    if final_changed:
        after_final_labels_changed(project=project, item_ids=[item_id])


@transaction.atomic
def _submit_orm(
    *,
    project: Project,
    user: AbstractBaseUser,
    item_id: int,
    labels: list[str],
    time_spent_ms: int,
    suggestion_id: int | None,
) -> Annotation:
    """`annotation_submit` on backends other than PostgreSQL: the IMMEDIATE transaction
    serialises every claim and submit, so what the first read sees holds until commit."""
    now = timezone.now()
    state = submit_state(project=project, user_id=user.pk, item_id=item_id, labels=labels, now=now)
    if state is None:
        _refuse(outcome="not_found", project=project, item_id=item_id, labels=labels)
    if state.known_labels < len(labels):
        _refuse(outcome="unknown_labels", project=project, item_id=item_id, labels=labels)
    if state.existing_annotation_id is not None:
        existing = Annotation.objects.select_related("item__project").get(
            pk=state.existing_annotation_id
        )
        return annotation_update(
            annotation=existing, user=user, labels=labels, time_spent_ms=time_spent_ms
        )
    k = state.annotations_wanted or project.annotations_per_item
    if not state.served:
        _refuse(outcome="not_served", project=project, item_id=item_id, labels=labels)
    if not state.live_lease and state.free_slots(k) <= 0:
        _refuse(outcome="conflict", project=project, item_id=item_id, labels=labels)
    if suggestion_id is not None:
        owner = (
            Prediction.objects.filter(pk=suggestion_id).values_list("item_id", flat=True).first()
        )
        if owner is None:  # deleted since it was shown: saved without it, as on PostgreSQL
            suggestion_id = None
        elif owner != item_id:
            _refuse(outcome="bad_suggestion", project=project, item_id=item_id, labels=labels)
    final_changed = k == 1 and state.annotation_count == 0 and not state.is_gold
    annotation = Annotation(
        item_id=item_id,
        project=project,
        annotator=user,
        labels=labels,
        time_spent_ms=time_spent_ms,
        suggestion_id=suggestion_id,
        created_at=now,
        updated_at=now,
    )
    submit_write(
        annotation=annotation, k=k, is_gold=state.is_gold, set_final=final_changed, now=now
    )
    _submitted(
        project=project,
        item_id=item_id,
        annotations_wanted=state.annotations_wanted,
        annotation_count=state.annotation_count + 1,
        final_changed=final_changed,
    )
    return annotation


@transaction.atomic
def annotation_update(
    *, annotation: Annotation, user: AbstractBaseUser, labels: Sequence[str], time_spent_ms: int = 0
) -> Annotation:
    """The annotator changes their own answer."""
    if annotation.annotator_id != user.pk:
        raise ApplicationError("You can only change your own annotations.")
    project = annotation.item.project
    cleaned = _clean_labels(project=project, labels=labels)
    previous = annotation.labels
    now = timezone.now()
    annotation.labels = cleaned
    annotation.time_spent_ms = annotation.time_spent_ms + max(0, int(time_spent_ms))
    annotation.save(update_fields=["labels", "time_spent_ms", "updated_at"])
    AnnotationEvent.objects.create(
        annotation_id_ref=annotation.pk,
        item_id=annotation.item_id,
        annotator=user,
        action=AnnotationEvent.Action.UPDATE,
        labels=cleaned,
        previous_labels=previous,
        time_spent_ms=max(0, int(time_spent_ms)),
    )
    Item.objects.filter(pk=annotation.item_id).update(updated_at=now)
    after_annotations_changed(project=project, item_ids=[annotation.item_id])
    _single_final(project=project, item_id=annotation.item_id)
    return annotation


@transaction.atomic
def annotation_retract(*, annotation: Annotation, user: AbstractBaseUser) -> Assignment:
    """Undo: remove the user's answer, reopen the item and hand it straight back to them."""
    if annotation.annotator_id != user.pk:
        raise ApplicationError("You can only undo your own annotations.")
    item = Item.objects.select_for_update().get(pk=annotation.item_id)
    project = item.project
    now = timezone.now()
    AnnotationEvent.objects.create(
        annotation_id_ref=annotation.pk,
        item=item,
        annotator=user,
        action=AnnotationEvent.Action.RETRACT,
        labels=None,
        previous_labels=annotation.labels,
    )
    annotation.delete()
    Item.objects.filter(pk=item.pk).update(
        annotation_count=F("annotation_count") - 1, status=Item.Status.OPEN, updated_at=now
    )
    after_annotations_changed(project=project, item_ids=[item.pk])
    _single_final(project=project, item_id=item.pk)
    assignment = assignment_upsert(
        project=project,
        user_id=user.pk,
        item_id=item.pk,
        status=Status.LEASED,
        leased_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )
    if assignment.pk is None:
        assignment = Assignment.objects.get(item=item, user=user)
    assignment.item = item
    return assignment
