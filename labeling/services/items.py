"""Item-level operations that are not about one annotation (those live in annotations.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.db import transaction
from django.db.models import F, QuerySet
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
    already_full = items.filter(annotation_count__gte=F("project__annotations_per_item")).count()
    reopened = items.update(
        status=Item.Status.OPEN,
        final_labels=None,
        final_confidence=None,
        final_lineage=None,
        updated_at=timezone.now(),
    )
    return ReopenResult(reopened=reopened, already_full=already_full)
