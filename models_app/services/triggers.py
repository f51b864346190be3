"""What a change of final labels sets in motion (called from labeling.services.hooks)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from labeling.models import Item, Project
from labeling.services.db import commit_without_flush_wait


def flywheel_final_labels_changed(*, project: Project, item_ids: Sequence[int]) -> None:
    """After the caller's transaction commits: count the new final labels towards the next
    retrain, and queue error-driven mining for these items. Nothing slow runs here."""
    ids = [int(i) for i in item_ids]
    if not ids or project.multi_label:
        return
    transaction.on_commit(lambda: _after_commit(project=project, item_ids=ids))


def _after_commit(*, project: Project, item_ids: list[int]) -> None:
    from active_learning.tasks import mine_task_enqueue
    from models_app.models import ModelVersion
    from models_app.services.training import final_labels_counted

    # Runs after every submit: one short transaction whose commit does not wait for the disk
    # (the counter only decides when to retrain; a crash losing an increment is harmless).
    with transaction.atomic():
        commit_without_flush_wait()
        labelled = Item.objects.filter(pk__in=item_ids, final_labels__isnull=False).count()
        if labelled:
            final_labels_counted(project=project, count=labelled)
    if labelled and ModelVersion.objects.filter(project=project, status="active").exists():
        mine_task_enqueue(project_id=project.pk, item_ids=item_ids)
