"""What a request decides after it waited for an item's row lock, on a real PostgreSQL.

The hot paths lock the item row and then read the state they decide on (the user's earlier
answer, other annotators' live leases). Under READ COMMITTED a statement that waits for a row
lock keeps the snapshot it started with, so the state must be read by a statement that starts
*after* the lock is held, or it misses what the lock holder committed. Each test holds the
item's lock from a second connection, lets the request block on it, commits a change there,
and checks that the request saw the change.
"""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from labeling.errors import ConflictError
from labeling.models import Annotation, Assignment, Item
from labeling.services.annotations import annotation_submit
from labeling.services.queue import queue_next_item
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("lock-wait races need PostgreSQL: set DATABASE_URL=postgres://...")


def _other_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("server_side_binding", None)
    params.pop("prepare_threshold", None)
    return psycopg.connect(**params)


def _run_blocked(call):
    """Start `call` in a thread and return once it waits for a lock; join() gives its outcome."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except Exception as exc:  # handed to the test
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    with _other_connection() as watcher:
        watcher.autocommit = True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the request never waited for the row lock")

    def join():
        thread.join(timeout=10)
        assert not thread.is_alive()
        return outcome

    return join


def _assignment_sql():
    return (
        f"INSERT INTO {Assignment._meta.db_table} "
        "(item_id, project_id, user_id, status, leased_at, expires_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (item_id, user_id) DO UPDATE SET status = EXCLUDED.status, "
        "expires_at = EXCLUDED.expires_at"
    )


def test_a_second_submit_that_waited_for_the_first_edits_instead_of_failing():
    # Given an annotator holding a lease, and their first submit holding the item's lock
    project = ProjectFactory(labels=["pos", "neg"])
    user = UserFactory()
    MembershipFactory(project=project, user=user)
    item = ItemFactory(project=project)
    assert queue_next_item(project=project, user=user).item_id == item.pk
    now = timezone.now()
    with _other_connection() as first:
        first.execute(f"SELECT id FROM {Item._meta.db_table} WHERE id = %s FOR UPDATE", [item.pk])
        # When the same answer is submitted again meanwhile (a double click, a retry)
        join = _run_blocked(
            lambda: annotation_submit(project=project, user=user, item_id=item.pk, labels=["neg"])
        )
        # and the first submit commits its annotation
        first.execute(
            f"INSERT INTO {Annotation._meta.db_table} (created_at, updated_at, item_id, "
            "project_id, annotator_id, labels, time_spent_ms) "
            "VALUES (%s, %s, %s, %s, %s, '[\"pos\"]'::jsonb, 0)",
            [now, now, item.pk, project.pk, user.pk],
        )
        first.execute(
            f"UPDATE {Item._meta.db_table} SET annotation_count = 1, status = 'done' WHERE id = %s",
            [item.pk],
        )
        first.execute(_assignment_sql(), [item.pk, project.pk, user.pk, "submitted", now, now, now])
        first.commit()
    outcome = join()

    # Then the second submit saw the first and changed its answer: one annotation, no error
    assert "error" not in outcome, outcome.get("error")
    assert list(Annotation.objects.filter(item=item).values_list("annotator_id", "labels")) == [
        (user.pk, ["neg"])
    ]
    assert Item.objects.get(pk=item.pk).annotation_count == 1


def test_a_late_submit_that_waited_for_a_new_lease_is_refused():
    # Given k = 1 and an annotator whose lease on the item has expired
    project = ProjectFactory(labels=["pos", "neg"])
    late, fresh = UserFactory(), UserFactory()
    for user in (late, fresh):
        MembershipFactory(project=project, user=user)
    item = ItemFactory(project=project)
    assert queue_next_item(project=project, user=late).item_id == item.pk
    Assignment.objects.filter(user=late).update(expires_at=timezone.now() - timedelta(minutes=1))
    now = timezone.now()
    with _other_connection() as other:
        # while another annotator's "next item" holds the item's lock
        other.execute(f"SELECT id FROM {Item._meta.db_table} WHERE id = %s FOR UPDATE", [item.pk])
        # When the late annotator submits
        join = _run_blocked(
            lambda: annotation_submit(project=project, user=late, item_id=item.pk, labels=["pos"])
        )
        # and the other annotator's lease commits
        other.execute(
            _assignment_sql(),
            [item.pk, project.pk, fresh.pk, "leased", now, now + timedelta(hours=1), now],
        )
        other.commit()
    outcome = join()

    # Then the late submit is refused: the item's one slot is held by the live lease
    assert isinstance(outcome.get("error"), ConflictError), outcome
    assert not Annotation.objects.filter(item=item).exists()
