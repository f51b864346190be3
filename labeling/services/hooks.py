"""Explicit extension points of the labeling core, called by its services after a change.

The core calls these functions; each downstream app adds its one line here (no signals, so
a reader sees every consequence of a label in one place). They are called after the change was
written and must only schedule work for after the commit (``transaction.on_commit`` or
``task.delay_on_commit``), never write or do slow work inline: on PostgreSQL a submit is one
statement that has already committed when the hooks run (unless the caller holds a
transaction open, when ``on_commit`` waits for the caller's commit).

Contract of the final label (written by the core for k == 1, by aggregation for k > 1, by
adjudication, or by the pre-label cascade):
- ``Item.final_labels``: list of label values, or null while the item has no settled label
  (e.g. awaiting annotations or adjudication).
- ``Item.final_confidence``: float in [0, 1].
- ``Item.final_lineage``: dict with at least ``method`` (e.g. ``single_annotator``,
  ``majority_vote``, ``dawid_skene``, ``adjudication``, ``gold``, ``auto_accept``) and
  ``version``; ``machine: true`` when no human produced it (auto-accepted pre-labels), which
  keeps it out of every held-out evaluation set.
"""

from __future__ import annotations

from collections.abc import Sequence

from labeling.models import Item, Project
from models_app.services.embeddings import embeddings_schedule
from models_app.services.triggers import flywheel_final_labels_changed
from quality import hooks as quality_hooks


def after_annotations_changed(
    *, project: Project, item_ids: Sequence[int], items: Sequence[Item] | None = None
) -> None:
    """Human annotations of these items were created, edited or retracted. A caller that has
    just written the items may pass them (with `annotations_wanted` and the new
    `annotation_count`) so that downstream checks need not read them again."""
    quality_hooks.annotations_changed(project=project, item_ids=item_ids, items=items)


def after_final_labels_changed(*, project: Project, item_ids: Sequence[int]) -> None:
    """The final labels of these items changed (set, replaced or cleared)."""
    flywheel_final_labels_changed(project=project, item_ids=item_ids)


def after_items_imported(*, project: Project, job_id: int) -> None:
    """An import job finished and committed its items (called in its last transaction)."""
    embeddings_schedule(project=project)


def after_label_set_changed(*, project: Project) -> None:
    """A label's description changed (the label-set version was bumped): while no model is
    active, re-rank so the zero-shot suggestions are computed from the new descriptions."""
    from active_learning.services.ranking import ranking_schedule
    from models_app.models import ModelVersion

    if not ModelVersion.objects.filter(project=project, status="active").exists():
        ranking_schedule(project=project, reason="label descriptions changed")
