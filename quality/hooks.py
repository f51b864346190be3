"""What the labeling core's hooks (`labeling/services/hooks.py`) call in the quality app.

Kept free of module-level imports of labeling services so the core can import it at the top
of its hooks module without an import cycle."""

from __future__ import annotations

from collections.abc import Sequence


def annotations_changed(*, project, item_ids: Sequence[int], items=None) -> None:
    """Queue a coalesced re-aggregation after commit (see `quality.services.aggregation`)."""
    from quality.services.aggregation import annotations_changed as schedule

    schedule(project=project, item_ids=item_ids, items=items)
