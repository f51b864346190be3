"""Many annotators asking for items at the same moment, on a real PostgreSQL.

Invariants: no item is ever handed to more than k annotators, and every annotation whose
submit returned is in the database.
"""

import threading
import time
from collections import defaultdict

import pytest
from django.db import connection, connections

from labeling.models import Annotation, Item
from labeling.services.annotations import annotation_submit
from labeling.services.items import project_overlap_apply
from labeling.services.queue import queue_next_item
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 16


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency test needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.mark.parametrize(("k", "n_items", "overlap"), [(1, 120, 1.0), (3, 40, 1.0), (3, 80, 0.4)])
def test_concurrent_annotators_never_exceed_k_and_lose_nothing(k, n_items, overlap):
    # Given a project with k annotators per item (on a share `overlap` of the items, the rest
    # one) and more annotators than items can hold
    project = ProjectFactory(annotations_per_item=k, lease_seconds=3600, overlap_fraction=overlap)
    ItemFactory.create_batch(n_items, project=project)
    project_overlap_apply(project=project)
    wanted = {
        pk: w or k
        for pk, w in Item.objects.filter(project=project).values_list("pk", "annotations_wanted")
    }
    users = [UserFactory(username=f"c{i}") for i in range(WORKERS)]
    for user in users:
        MembershipFactory(project=project, user=user)

    handed = defaultdict(set)  # item id -> users it was handed to
    submitted = []  # (item id, user id) of every submit that returned
    errors = []
    idle_rounds = []
    bookkeeping = threading.Lock()
    start = threading.Barrier(WORKERS)

    def annotate(user):
        try:
            start.wait()
            while True:
                assignment = queue_next_item(project=project, user=user)
                if assignment is None:
                    # Empty for me right now; others may still release slots. Stop only
                    # when no item needs work any more.
                    if not Item.objects.filter(project=project, status="open").exists():
                        return
                    idle_rounds.append(1)
                    if len(idle_rounds) > 20_000:
                        raise RuntimeError("queue never drained")
                    time.sleep(0.01)
                    continue
                with bookkeeping:
                    handed[assignment.item_id].add(user.pk)
                annotation_submit(
                    project=project, user=user, item_id=assignment.item_id, labels=["pos"]
                )
                with bookkeeping:
                    submitted.append((assignment.item_id, user.pk))
        except Exception as exc:  # surfaced below: any error fails the test
            errors.append(repr(exc))
        finally:
            connections.close_all()

    # When they all ask for work at once until the queue is empty
    threads = [threading.Thread(target=annotate, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    # Then no item went to more than k people, nothing was lost, and every item is finished
    assert errors == []
    assert all(len(holders) <= wanted[pk] for pk, holders in handed.items())
    stored = set(Annotation.objects.filter(project=project).values_list("item_id", "annotator_id"))
    assert stored == set(submitted)
    assert len(submitted) == sum(wanted.values())
    assert not Item.objects.filter(project=project, status=Item.Status.OPEN).exists()
    assert all(
        count == wanted[pk]
        for pk, count in Item.objects.filter(project=project).values_list("pk", "annotation_count")
    )
