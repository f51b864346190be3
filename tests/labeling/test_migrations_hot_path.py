"""Migrations 0006 (the hot path's database functions) and 0007 (redundant foreign-key
indexes), forwards and backwards."""

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)

REDUNDANT = {
    ("labeling_annotation", "item_id"),
    ("labeling_annotation", "project_id"),
    ("labeling_annotationevent", "item_id"),
    ("labeling_assignment", "item_id"),
    ("labeling_assignment", "user_id"),
}
FUNCTIONS = {"labeling_queue_next", "labeling_annotation_submit"}


def _single_column_indexes() -> set[tuple[str, str]]:
    found = set()
    with connection.cursor() as cursor:
        for table in {table for table, _ in REDUNDANT}:
            for info in connection.introspection.get_constraints(cursor, table).values():
                if info["index"] and not info["unique"] and len(info["columns"]) == 1:
                    found.add((table, info["columns"][0]))
    return found & REDUNDANT


def _functions() -> set[str]:
    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'labeling_%%'")
        return {name for (name,) in cursor.fetchall()} & FUNCTIONS


def test_hot_path_migrations_go_back_and_forth():
    expected_functions = FUNCTIONS if connection.vendor == "postgresql" else set()
    # Given the migrated schema: no redundant index, the functions in place
    assert _single_column_indexes() == set()
    assert _functions() == expected_functions
    try:
        # When migrating back before 0006
        call_command("migrate", "labeling", "0005", verbosity=0)
        # Then the indexes are back and the functions gone
        assert _single_column_indexes() == REDUNDANT
        assert _functions() == set()
    finally:
        call_command("migrate", verbosity=0)
    # And forwards again restores the migrated schema
    assert _single_column_indexes() == set()
    assert _functions() == expected_functions


def _locked_rows(item_ids) -> set[int]:
    """Items whose row carries a locker's transaction id (a lock writes xmax into the row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM labeling_item WHERE id = ANY(%s) AND xmax::text <> '0'",
            [list(item_ids)],
        )
        return {pk for (pk,) in cursor.fetchall()}


def test_next_locks_one_candidate_row_after_0008():
    """0008: a "next" locks (and so writes) only the item it leases; 0006 locked three."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's: set DATABASE_URL=postgres://...")
    from labeling.services.queue import queue_next_item
    from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

    project = ProjectFactory(labels=["a", "b"])

    def lease_first_of_three() -> tuple[int, set[int]]:
        user = UserFactory()
        MembershipFactory(project=project, user=user)
        items = [ItemFactory(project=project, priority=100 - n) for n in range(3)]
        leased = queue_next_item(project=project, user=user).item_id
        return leased, _locked_rows(item.pk for item in items)

    leased, locked = lease_first_of_three()
    assert locked == {leased}
    try:
        call_command("migrate", "labeling", "0007", verbosity=0)
        project.items.update(status="done")
        leased, locked = lease_first_of_three()
        assert leased in locked
        assert len(locked) == 3  # what 0008 changed
    finally:
        call_command("migrate", verbosity=0)
