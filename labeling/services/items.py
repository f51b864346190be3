"""Item-level operations that are not about one annotation (those live in annotations.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
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


class OverlapPreview(NamedTuple):
    """What applying k and the overlap share would do, before anything is written."""

    reopened: int  # finished items that would want more annotations and re-open
    closed: int  # open items that would have enough and close
    # Items whose final label (from the core's single-annotator rule or an aggregation) rests
    # on fewer answers than their new k: the next aggregation clears it until they have k.
    final_labels_cleared: int

    @property
    def clears_labels(self) -> bool:
        return self.final_labels_cleared > 0

    def describe(self) -> str:
        return (
            f"{self.reopened:,} finished item{'' if self.reopened == 1 else 's'} would re-open "
            f"and {self.final_labels_cleared:,} final label"
            f"{'' if self.final_labels_cleared == 1 else 's'} would be cleared until "
            f"{'it has' if self.final_labels_cleared == 1 else 'they have'} enough answers"
            + (f"; {self.closed:,} open items would close" if self.closed else "")
            + "."
        )


# Final labels that aggregation owns and clears when an item has fewer answers than its k
# (quality.services.aggregation.OWNED_METHODS; gold items are not touched by the overlap).
_CLEARED_METHODS = ("single_annotator", "majority_vote", "dawid_skene", "one_coin")


def _wanted_sql(*, project_id: int, k: int, fraction: float) -> tuple[str, list]:
    """The annotations an item would want under (k, fraction): SQL and its parameters."""
    if fraction >= 1 or k == 1:
        return "%s", [k]
    return f"CASE WHEN {_overlap_draw_sql(project_id)} < %s THEN %s ELSE 1 END", [fraction, k]


def project_overlap_preview(
    *, project, annotations_per_item: int | None = None, overlap_fraction: float | None = None
) -> OverlapPreview:
    """What `project_overlap_apply` would do with the given k and overlap share (default: the
    project object's), compared with the settings stored now, counted without writing."""
    k = int(
        annotations_per_item if annotations_per_item is not None else project.annotations_per_item
    )
    fraction = float(overlap_fraction if overlap_fraction is not None else project.overlap_fraction)
    wanted_sql, params = _wanted_sql(project_id=project.pk, k=k, fraction=fraction)
    wanted = RawSQL(wanted_sql, params, output_field=IntegerField())
    stored_k = (
        type(project).objects.values_list("annotations_per_item", flat=True).get(pk=project.pk)
    )
    current = Coalesce(F("annotations_wanted"), Value(stored_k))
    items = Item.objects.filter(project=project, is_gold=False).annotate(
        new_wanted=wanted, old_wanted=current
    )
    counts = items.aggregate(
        reopened=Count(
            "id", filter=Q(status=Item.Status.DONE, annotation_count__lt=F("new_wanted"))
        ),
        closed=Count(
            "id", filter=Q(status=Item.Status.OPEN, annotation_count__gte=F("new_wanted"))
        ),
        cleared=Count(
            "id",
            filter=Q(
                annotation_count__lt=F("new_wanted"),
                annotation_count__gte=F("old_wanted"),
                final_labels__isnull=False,
                final_lineage__method__in=_CLEARED_METHODS,
            ),
        ),
    )
    return OverlapPreview(
        reopened=counts["reopened"], closed=counts["closed"], final_labels_cleared=counts["cleared"]
    )


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
