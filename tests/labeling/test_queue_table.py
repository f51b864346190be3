"""The queue table (migration 0009): exactly the open, non-gold items with their priority, kept
by database triggers through every way items are written; and, on PostgreSQL, a submit's update
of the item row is HOT. Runs on SQLite and on PostgreSQL (their triggers are separate code)."""

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from active_learning.services.bulk import item_priorities_write
from labeling.models import Annotation, Item, QueueEntry
from labeling.selectors import project_progress
from labeling.services.annotations import annotation_retract, annotation_submit
from labeling.services.imports import import_job_create, import_run
from labeling.services.items import item_reopen, project_overlap_apply
from labeling.services.queue import queue_next_item
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def queue_rows(project=None) -> set[tuple[int, int, float]]:
    entries = QueueEntry.objects.all()
    if project is not None:
        entries = entries.filter(project=project)
    return set(entries.values_list("item_id", "project_id", "priority"))


def open_items(project=None) -> set[tuple[int, int, float]]:
    items = Item.objects.filter(status=Item.Status.OPEN, is_gold=False)
    if project is not None:
        items = items.filter(project=project)
    return set(items.values_list("id", "project_id", "priority"))


def assert_queue_is_the_open_items() -> None:
    assert queue_rows() == open_items()


@pytest.fixture
def loop():
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=1)
    user = UserFactory()
    MembershipFactory(project=project, user=user)
    return project, user


def test_inserted_items_enter_the_queue_except_finished_and_gold(loop):
    project, _ = loop
    ItemFactory.create_batch(3, project=project)
    ItemFactory(project=project, status=Item.Status.DONE)
    ItemFactory(project=project, is_gold=True, gold_labels=["pos"])

    assert len(queue_rows(project)) == 3
    assert_queue_is_the_open_items()


def test_submit_removes_the_item_and_undo_puts_it_back(loop):
    project, user = loop
    ItemFactory.create_batch(2, project=project)
    lease = queue_next_item(project=project, user=user)

    annotation = annotation_submit(
        project=project, user=user, item_id=lease.item_id, labels=["pos"]
    )
    assert lease.item_id not in {item_id for item_id, _, _ in queue_rows(project)}
    assert_queue_is_the_open_items()

    annotation_retract(annotation=Annotation.objects.get(pk=annotation.pk), user=user)
    assert lease.item_id in {item_id for item_id, _, _ in queue_rows(project)}
    assert_queue_is_the_open_items()


def test_items_stay_queued_until_their_k_th_annotation(loop):
    project, _ = loop
    project.annotations_per_item = 2
    project.save()
    item = ItemFactory(project=project)
    for name in ("a", "b"):
        user = UserFactory(username=name)
        MembershipFactory(project=project, user=user)
        assert queue_next_item(project=project, user=user).item_id == item.pk
        assert queue_rows(project), "still queued before its k-th annotation"
        annotation_submit(project=project, user=user, item_id=item.pk, labels=["neg"])
    assert queue_rows(project) == set()
    assert_queue_is_the_open_items()


def test_reopen_overlap_gold_and_field_updates_keep_the_queue(loop):
    project, user = loop
    items = ItemFactory.create_batch(6, project=project)
    for _ in range(3):
        lease = queue_next_item(project=project, user=user)
        annotation_submit(project=project, user=user, item_id=lease.item_id, labels=["pos"])
    assert_queue_is_the_open_items()

    item_reopen(item_ids=[items[0].pk])  # the admin's re-open action
    assert_queue_is_the_open_items()

    project.annotations_per_item, project.overlap_fraction = 3, 1.0
    project.save()
    project_overlap_apply(project=project)  # more annotations wanted: finished items reopen
    assert_queue_is_the_open_items()

    Item.objects.filter(pk=items[4].pk).update(is_gold=True, gold_labels=["neg"])
    Item.objects.filter(pk=items[5].pk).update(priority=42.0)
    Item.objects.filter(pk=items[3].pk).update(text="edited")  # not a queue field
    assert_queue_is_the_open_items()
    assert (items[5].pk, project.pk, 42.0) in queue_rows(project)


def test_priority_writes_rerank_the_queue(loop):
    project, _ = loop
    items = ItemFactory.create_batch(5, project=project)
    ids = np.array([item.pk for item in items])

    item_priorities_write(item_ids=ids, priorities=np.arange(5, dtype=float) * 10)

    assert_queue_is_the_open_items()
    served = queue_next_item(project=project, user=loop[1]).item_id
    assert served == items[-1].pk  # the highest priority written


def test_deleting_items_and_projects_empties_their_queue(loop):
    project, _ = loop
    other = ProjectFactory(labels=["x"])
    items = ItemFactory.create_batch(3, project=project)
    ItemFactory.create_batch(2, project=other)

    Item.objects.filter(pk=items[0].pk).delete()
    assert_queue_is_the_open_items()
    project.delete()
    assert_queue_is_the_open_items()
    assert len(queue_rows()) == 2
    if connection.vendor == "postgresql":  # the statement trigger, without Django's cascade
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM labeling_item WHERE project_id = %s", [other.pk])
        assert queue_rows() == set()


def test_imports_fill_the_queue(loop, tmp_path, settings):
    project, _ = loop
    settings.MEDIA_ROOT = tmp_path / "media"
    path = tmp_path / "items.csv"
    path.write_text("id,text,label\n1,alpha,\n2,beta,pos\n3,gamma,\n", encoding="utf-8")

    job = import_job_create(
        project=project,
        path=path,
        enqueue=False,
        mapping={"id": "id", "text": "text", "label": "label"},
        labels_are_final=True,
    )
    import_run(job_id=job.pk)

    # The labelled row arrives finished (its label is final); the others are queued.
    assert {
        e for (e,) in Item.objects.filter(queue_entry__isnull=False).values_list("external_id")
    } == {"1", "3"}
    assert_queue_is_the_open_items()


def test_progress_counts_open_items_from_the_queue(loop):
    project, user = loop
    ItemFactory.create_batch(3, project=project)
    ItemFactory(project=project, is_gold=True, gold_labels=["pos"])  # open, not queued
    lease = queue_next_item(project=project, user=user)
    annotation_submit(project=project, user=user, item_id=lease.item_id, labels=["pos"])

    progress = project_progress(project=project)

    assert (progress["total"], progress["done"], progress["open"]) == (4, 1, 3)


def _item_updates() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE relname = 'labeling_item'"
        )
        return cursor.fetchone()


def test_a_submit_updates_the_item_row_in_place(loop):
    """HOT: no indexed column changes, so the row's new version stays on its page and no index
    gets an entry. An index on status or updated_at (what 0009 dropped) makes this fail."""
    if connection.vendor != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's: set DATABASE_URL=postgres://...")
    project, user = loop
    ItemFactory.create_batch(3, project=project)
    before = _item_updates()

    for _ in range(3):
        lease = queue_next_item(project=project, user=user)
        annotation_submit(project=project, user=user, item_id=lease.item_id, labels=["neg"])

    updates, hot = (after - start for after, start in zip(_item_updates(), before, strict=True))
    assert updates == 3
    assert hot == updates


@pytest.mark.django_db(transaction=True)
def test_the_migration_goes_back_and_forth(loop):
    project, _ = loop
    ItemFactory.create_batch(2, project=project)
    try:
        call_command("migrate", "labeling", "0008", verbosity=0)
        ItemFactory(project=project)  # written without the triggers
    finally:
        call_command("migrate", verbosity=0)
    # The migration fills the queue from the items it finds.
    assert len(queue_rows(project)) == 3
    assert_queue_is_the_open_items()
