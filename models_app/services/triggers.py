"""What a change of final labels sets in motion (called from labeling.services.hooks)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from labeling.models import Project


def flywheel_final_labels_changed(*, project: Project, item_ids: Sequence[int]) -> None:
    """After the caller's transaction commits: count the new final labels towards the next
    retrain, and queue error-driven mining for these items. Nothing slow runs here."""
    ids = [int(i) for i in item_ids]
    if not ids or project.multi_label:
        return
    transaction.on_commit(lambda: _after_commit(project=project, item_ids=ids))


def _after_commit(*, project: Project, item_ids: list[int]) -> None:
    from active_learning.services.mining import mining_worth_checking
    from active_learning.tasks import mine_task_enqueue
    from models_app.services.training import label_counter_add, retrain_if_due

    # Runs after every submit: one statement in the common case.
    counter = label_counter_add(project=project, item_ids=item_ids)
    if not counter.added:
        return
    retrain_if_due(project=project, counter=counter)
    if counter.has_active_model and mining_worth_checking(project_id=project.pk, item_ids=item_ids):
        mine_task_enqueue(project_id=project.pk, item_ids=item_ids)
