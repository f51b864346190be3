"""Bulk priority writes: one transaction, or (large, PostgreSQL, outside a transaction) two
connections over disjoint id ranges. Either way every priority lands."""

import numpy as np
import pytest
from django.db import connection

import active_learning.services.bulk as bulk
from labeling.models import Item
from tests.factories import ItemFactory, ProjectFactory


def _write_and_read(n):
    project = ProjectFactory()
    items = [ItemFactory(project=project) for _ in range(n)]
    ids = np.array([i.pk for i in reversed(items)], dtype=np.int64)  # not in id order
    priorities = (np.arange(len(ids), dtype=np.float64) + 1) / 10  # none equal to the default
    updated = bulk.item_priorities_write(item_ids=ids, priorities=priorities)
    stored = dict(Item.objects.filter(project=project).values_list("id", "priority"))
    return updated, {int(i): float(p) for i, p in zip(ids, priorities, strict=True)}, stored


@pytest.mark.django_db
def test_priorities_are_written_and_unchanged_rows_skipped():
    updated, expected, stored = _write_and_read(12)
    assert updated == 12
    assert stored == expected


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_large_writes_split_over_two_connections_land_completely(monkeypatch):
    monkeypatch.setattr(bulk, "_PARALLEL_MIN_ROWS", 10)
    calls = []
    original = bulk._priorities_postgres

    def spy(item_ids, priorities):
        calls.append(len(item_ids))
        return original(item_ids, priorities)

    monkeypatch.setattr(bulk, "_priorities_postgres", spy)

    updated, expected, stored = _write_and_read(25)

    assert sorted(calls) == [12, 13]
    assert updated == 25
    assert stored == expected
