"""The annotator queue: priority order, k slots, leases, skips, expiry."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from labeling.errors import ApplicationError, ConflictError
from labeling.models import Assignment, Item
from labeling.services.annotations import annotation_submit
from labeling.services.queue import assignment_skip, queue_next_item
from tests.factories import ItemFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _member(project, name):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user)
    return user


def test_next_item_follows_priority_then_id(project, annotator):
    low = ItemFactory(project=project, priority=0.1)
    high = ItemFactory(project=project, priority=0.9)
    ItemFactory(project=project, priority=0.5)

    first = queue_next_item(project=project, user=annotator)

    assert first.item_id == high.pk
    annotation_submit(project=project, user=annotator, item_id=high.pk, labels=["pos"])
    second = queue_next_item(project=project, user=annotator)
    assert second.item.priority == 0.5
    annotation_submit(project=project, user=annotator, item_id=second.item_id, labels=["neg"])
    assert queue_next_item(project=project, user=annotator).item_id == low.pk


def test_reload_returns_the_same_lease_and_exclude_prefetches_another(project, annotator):
    ItemFactory.create_batch(3, project=project)

    first = queue_next_item(project=project, user=annotator)
    again = queue_next_item(project=project, user=annotator)
    prefetched = queue_next_item(project=project, user=annotator, exclude_item_ids=[first.item_id])

    assert again.item_id == first.item_id
    assert prefetched.item_id != first.item_id


def test_leased_item_is_not_handed_to_a_second_annotator_when_k_is_one(project, annotator):
    only = ItemFactory(project=project)
    other = _member(project, "other")

    assert queue_next_item(project=project, user=annotator).item_id == only.pk
    assert queue_next_item(project=project, user=other) is None


def test_k_annotators_share_an_item_but_never_more(project):
    project.annotations_per_item = 2
    project.save()
    item = ItemFactory(project=project)
    a, b, c = (_member(project, n) for n in "abc")

    assert queue_next_item(project=project, user=a).item_id == item.pk
    assert queue_next_item(project=project, user=b).item_id == item.pk
    assert queue_next_item(project=project, user=c) is None

    annotation_submit(project=project, user=a, item_id=item.pk, labels=["pos"])
    annotation_submit(project=project, user=b, item_id=item.pk, labels=["neg"])
    item.refresh_from_db()
    assert item.status == Item.Status.DONE
    assert item.annotation_count == 2
    assert queue_next_item(project=project, user=c) is None


def test_expired_lease_frees_the_item(project, annotator):
    item = ItemFactory(project=project)
    other = _member(project, "other")
    queue_next_item(project=project, user=annotator)
    Assignment.objects.filter(user=annotator).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert queue_next_item(project=project, user=other).item_id == item.pk


def test_submit_on_expired_lease_saves_when_item_still_needs_it(project, annotator):
    item = ItemFactory(project=project)
    queue_next_item(project=project, user=annotator)
    Assignment.objects.filter(user=annotator).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )

    annotation = annotation_submit(project=project, user=annotator, item_id=item.pk, labels=["neg"])

    assert annotation.labels == ["neg"]
    item.refresh_from_db()
    assert item.status == Item.Status.DONE
    assert item.final_labels == ["neg"]


def test_submit_on_expired_lease_conflicts_when_someone_else_took_the_slot(project, annotator):
    item = ItemFactory(project=project)
    other = _member(project, "other")
    queue_next_item(project=project, user=annotator)
    Assignment.objects.filter(user=annotator).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )
    queue_next_item(project=project, user=other)
    annotation_submit(project=project, user=other, item_id=item.pk, labels=["pos"])

    with pytest.raises(ConflictError):
        annotation_submit(project=project, user=annotator, item_id=item.pk, labels=["neg"])
    item.refresh_from_db()
    assert item.annotation_count == 1


def test_skipped_item_is_not_offered_again_to_that_user_but_is_to_others(project, annotator):
    item = ItemFactory(project=project)
    other = _member(project, "other")
    queue_next_item(project=project, user=annotator)

    assignment_skip(project=project, user=annotator, item_id=item.pk)

    assert queue_next_item(project=project, user=annotator) is None
    assert queue_next_item(project=project, user=other).item_id == item.pk


def test_items_of_other_projects_are_never_served(project, annotator):
    ItemFactory()  # another project
    assert queue_next_item(project=project, user=annotator) is None


def test_skip_of_an_item_from_another_project_is_refused(project, annotator):
    foreign = ItemFactory()
    with pytest.raises(ApplicationError):
        assignment_skip(project=project, user=annotator, item_id=foreign.pk)


def test_leases_expire_retires_only_long_expired_leases(project, annotator):
    from labeling.services.queue import leases_expire

    # given two leases, one expired long ago and one live
    old, live = ItemFactory(project=project), ItemFactory(project=project)
    now = timezone.now()
    for item, expires in ((old, now - timedelta(minutes=10)), (live, now + timedelta(minutes=5))):
        Assignment.objects.create(
            project=project,
            item=item,
            user=annotator,
            status=Assignment.Status.LEASED,
            leased_at=now - timedelta(minutes=20),
            expires_at=expires,
        )

    # when the sweep runs
    released = leases_expire(grace_seconds=60)

    # then only the expired one is released, and the live one is still what the user is handed
    assert released == 1
    statuses = dict(Assignment.objects.values_list("item_id", "status"))
    assert statuses == {old.pk: "released", live.pk: "leased"}
    assert queue_next_item(project=project, user=annotator).item.pk == live.pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_queue_tables_are_vacuumed_by_dead_row_count(db):
    """Migrations 0005 and 0009: the queue's dead entries are cleaned after a fixed number of
    changed rows, not after 20% of a large table."""
    tables = ["labeling_assignment", "labeling_item", "labeling_queueentry"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s) ORDER BY relname",
            [tables],
        )
        rows = cursor.fetchall()
    assert [name for name, _ in rows] == tables
    for _, options in rows:
        assert "autovacuum_vacuum_scale_factor=0" in options
        assert "autovacuum_vacuum_threshold=20000" in options
