"""Item-level operations that are not about one annotation (those live in annotations.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import Item


class ReopenResult(NamedTuple):
    reopened: int
    # Re-opened items that already hold k annotations: the queue serves an item only while it
    # has fewer than k, so these wait until the project's k is raised or an annotation retracted.
    already_full: int


@transaction.atomic
def item_reopen(*, item_ids: Iterable[int] | QuerySet) -> ReopenResult:
    """Put items back to "open" and clear their final label, confidence and lineage.

    Annotations and their history are kept. Items of any project may be mixed. One bulk UPDATE;
    ``updated_at`` is set so incremental exports (``changed_since``) pick the change up.
    """
    ids = item_ids if isinstance(item_ids, QuerySet) else [int(pk) for pk in item_ids]
    items = Item.objects.filter(pk__in=ids)
    already_full = items.filter(
        annotation_count__gte=Coalesce(F("annotations_wanted"), F("project__annotations_per_item"))
    ).count()
    reopened = items.update(
        status=Item.Status.OPEN,
        final_labels=None,
        final_confidence=None,
        final_lineage=None,
        updated_at=timezone.now(),
    )
    return ReopenResult(reopened=reopened, already_full=already_full)


# Overlap: which items get k annotators. A fixed pseudo-random draw per item, the same in SQL
# and Python, so the choice survives restarts and is the same on every backend.
_OVERLAP_MODULUS = 1_000_003


def overlap_draw(*, item_id: int, project_id: int) -> float:
    """The item's fixed draw in [0, 1): the item gets k annotators when draw < fraction."""
    return ((item_id * 2654435761 + project_id * 40503) % _OVERLAP_MODULUS) / _OVERLAP_MODULUS


def _overlap_draw_sql(project_id: int) -> str:
    m = _OVERLAP_MODULUS
    return f"((id * 2654435761 + {int(project_id)} * 40503) %% {m}) * 1.0 / {m}"


class OverlapResult(NamedTuple):
    with_k: int
    with_one: int
    reopened: int
    closed: int


@transaction.atomic
def project_overlap_apply(*, project) -> OverlapResult:
    """Give each non-gold item its k from the project's overlap settings and re-open or close
    items accordingly. Idempotent; call after import and whenever k or the fraction changes.

    Items drawn into the overlap share keep ``annotations_wanted = NULL`` (= the project's k,
    so a later change of k applies to them at once); the others get 1. Re-opened items keep
    their annotations (and any final label until aggregation replaces it).
    """
    k = project.annotations_per_item
    items = Item.objects.filter(project=project, is_gold=False)
    if project.overlap_fraction >= 1 or k == 1:
        items.exclude(annotations_wanted=None).update(annotations_wanted=None)
    else:
        draw = _overlap_draw_sql(project.pk)
        table = Item._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET annotations_wanted = CASE WHEN {draw} < %s THEN NULL "
                "ELSE 1 END WHERE project_id = %s AND NOT is_gold",
                [project.overlap_fraction, project.pk],
            )
    wanted = Coalesce(F("annotations_wanted"), Value(k))
    now = timezone.now()
    reopened = items.filter(status=Item.Status.DONE, annotation_count__lt=wanted).update(
        status=Item.Status.OPEN, updated_at=now
    )
    closed = items.filter(status=Item.Status.OPEN, annotation_count__gte=wanted).update(
        status=Item.Status.DONE, updated_at=now
    )
    with_one = items.filter(annotations_wanted=1).count()
    return OverlapResult(
        with_k=items.count() - with_one, with_one=with_one, reopened=reopened, closed=closed
    )
