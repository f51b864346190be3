"""Adjudication: a reviewer settles an item's final label. The decision wins over aggregation
(which re-applies it on every run), is recorded in `Adjudication`, and can be revoked."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Annotation, Item, Project
from labeling.services.hooks import after_final_labels_changed
from quality.models import Adjudication
from quality.services._labels import labels_clean, project_label_values


@transaction.atomic
def adjudication_decide(
    *,
    project: Project,
    item_id: int,
    reviewer: AbstractBaseUser,
    labels: Sequence[str],
    note: str = "",
) -> Adjudication:
    """Record the reviewer's choice and make it the item's final label (lineage
    ``adjudication``). Deciding again supersedes the earlier decision. Takes the item's row
    lock, as the aggregation job's writes do, so neither overwrites the other unseen."""
    item = Item.objects.select_for_update().filter(pk=item_id, project=project).first()
    if item is None:
        raise ApplicationError("No such item in this project.", {"item": item_id})
    cleaned = labels_clean(
        project=project, labels=labels, allowed=project_label_values(project=project)
    )
    lineage = item.final_lineage or {}
    now = timezone.now()
    Adjudication.objects.filter(item=item, superseded_at__isnull=True).update(superseded_at=now)
    annotation_ids = list(
        Annotation.objects.filter(item=item).order_by("id").values_list("id", flat=True)
    )
    if lineage.get("needs_adjudication"):
        reason = lineage.get("reason") or Adjudication.Reason.LOW_CONFIDENCE
        proposed = lineage.get("proposed")
    else:
        reason = Adjudication.Reason.REVIEW
        proposed = item.final_labels
    decision = Adjudication.objects.create(
        project=project,
        item=item,
        reviewer=reviewer,
        labels=cleaned,
        note=note.strip()[:5000],
        reason=reason,
        proposed_labels=proposed,
        proposed_confidence=item.final_confidence,
        annotation_ids=annotation_ids,
    )
    Item.objects.filter(pk=item.pk).update(
        final_labels=cleaned,
        final_confidence=1.0,
        final_lineage={
            "method": "adjudication",
            "version": "1",
            "adjudication": decision.pk,
            "reviewer": reviewer.pk,
            "reason": reason,
            "annotations": annotation_ids,
        },
        updated_at=now,
    )
    after_final_labels_changed(project=project, item_ids=[item.pk])
    return decision


@transaction.atomic
def adjudication_revoke(*, project: Project, item_id: int) -> int:
    """Withdraw the active decision on an item: its final label goes back to aggregation
    (re-run after commit). Returns how many decisions were withdrawn (0 or 1)."""
    from quality.services.aggregation import aggregation_request_on_commit

    item = Item.objects.select_for_update().filter(pk=item_id, project=project).first()
    if item is None:
        raise ApplicationError("No such item in this project.", {"item": item_id})
    revoked = Adjudication.objects.filter(item=item, superseded_at__isnull=True).update(
        superseded_at=timezone.now()
    )
    if revoked:
        Item.objects.filter(pk=item.pk).update(
            final_labels=None, final_confidence=None, final_lineage=None, updated_at=timezone.now()
        )
        after_final_labels_changed(project=project, item_ids=[item.pk])
        aggregation_request_on_commit(project=project, delay=0)
    return revoked
