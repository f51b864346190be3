"""Per-item k (overlap on a share of items) and gold items mixed into the queue."""

import pytest

from labeling.models import Annotation, Item
from labeling.services.annotations import annotation_submit
from labeling.services.items import overlap_draw, project_overlap_apply
from labeling.services.queue import queue_next_item
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def _members(project, n):
    users = [UserFactory(username=f"o{project.pk}-{i}") for i in range(n)]
    for user in users:
        MembershipFactory(project=project, user=user)
    return users


def _label_all(project, user):
    served = []
    while (assignment := queue_next_item(project=project, user=user)) is not None:
        annotation_submit(project=project, user=user, item_id=assignment.item_id, labels=["pos"])
        served.append(assignment.item_id)
    return served


def test_overlap_gives_k_to_the_drawn_share_and_one_to_the_rest():
    # Given 400 items, k = 3 for 25% of them
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=3, overlap_fraction=0.25)
    items = ItemFactory.create_batch(400, project=project)

    result = project_overlap_apply(project=project)

    wanted = dict(Item.objects.filter(project=project).values_list("pk", "annotations_wanted"))
    drawn = {i.pk for i in items if overlap_draw(item_id=i.pk, project_id=project.pk) < 0.25}
    assert {pk for pk, w in wanted.items() if w is None} == drawn
    assert all(wanted[pk] == 1 for pk in wanted if pk not in drawn)
    assert result.with_k == len(drawn)
    assert 60 <= len(drawn) <= 140  # a fair draw, not all or nothing


def test_items_with_k_one_close_after_one_annotation_and_overlap_items_after_k():
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=3, overlap_fraction=0.3)
    ItemFactory.create_batch(60, project=project)
    project_overlap_apply(project=project)
    a, b, c, d = _members(project, 4)

    for user in (a, b, c, d):
        _label_all(project, user)

    for item in Item.objects.filter(project=project):
        want = item.annotations_wanted or 3
        assert item.annotation_count == want, item.pk
        assert item.status == Item.Status.DONE
        # Single-annotator items get their final label at once; overlap items wait for
        # aggregation.
        assert (item.final_labels is not None) == (want == 1)
    # The fourth annotator found nothing left: three annotators filled every slot.
    assert not Annotation.objects.filter(annotator=d).exists()


def test_raising_k_reopens_finished_overlap_items_and_lowering_it_closes_them():
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=1)
    ItemFactory.create_batch(10, project=project)
    (user,) = _members(project, 1)
    _label_all(project, user)
    assert not Item.objects.filter(project=project, status="open").exists()

    project.annotations_per_item = 2
    project.save()
    result = project_overlap_apply(project=project)

    assert result.reopened == 10
    assert Item.objects.filter(project=project, status="open").count() == 10

    project.annotations_per_item = 1
    project.save()
    result = project_overlap_apply(project=project)
    assert result.closed == 10


def test_gold_items_are_served_at_the_gold_rate_to_every_annotator_without_k():
    # Given gold items and gold_rate = 1 (always, while there are unanswered gold items)
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=1, gold_rate=1.0)
    ItemFactory.create_batch(3, project=project)
    gold = ItemFactory.create_batch(2, project=project, is_gold=True, gold_labels=["neg"])
    a, b = _members(project, 2)

    served_a = _label_all(project, a)
    served_b = _label_all(project, b)

    # Every annotator meets every gold item once, first, and the regular items after them.
    assert set(served_a[:2]) == {g.pk for g in gold}
    assert set(served_b[:2]) == {g.pk for g in gold}
    assert len(served_a) + len(served_b) == 3 + 2 * 2
    for g in gold:
        g.refresh_from_db()
        assert g.annotation_count == 2
        assert g.status == Item.Status.OPEN  # gold never closes
        assert g.final_labels is None  # the core does not overwrite a gold answer


def test_gold_items_never_appear_when_the_rate_is_zero():
    project = ProjectFactory(labels=["pos", "neg"], gold_rate=0.0)
    ItemFactory.create_batch(3, project=project)
    ItemFactory(project=project, is_gold=True, gold_labels=["pos"])
    (user,) = _members(project, 1)

    served = _label_all(project, user)

    assert len(served) == 3
    assert not Item.objects.filter(pk__in=served, is_gold=True).exists()


def test_manager_changes_k_over_the_api_and_items_reopen(db):
    from rest_framework.test import APIClient

    from labeling.models import Membership

    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=1)
    ItemFactory.create_batch(4, project=project)
    (user,) = _members(project, 1)
    _label_all(project, user)
    boss = UserFactory(username="boss-k")
    MembershipFactory(project=project, user=boss, role=Membership.Role.MANAGER)
    api = APIClient()

    api.force_authenticate(user)
    assert api.patch(f"/api/projects/{project.pk}/", {"k": 2}, format="json").status_code == 403
    api.force_authenticate(boss)
    # the four final labels would be cleared: the change needs a confirmation
    refused = api.patch(
        f"/api/projects/{project.pk}/", {"k": 2, "overlap_fraction": 1.0}, format="json"
    )
    assert refused.status_code == 409
    assert refused.json()["final_labels_cleared"] == 4
    response = api.patch(
        f"/api/projects/{project.pk}/",
        {"k": 2, "overlap_fraction": 1.0, "confirm": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["k"] == 2
    assert Item.objects.filter(project=project, status="open").count() == 4
    bad = api.patch(f"/api/projects/{project.pk}/", {"gold_rate": 2}, format="json")
    assert bad.status_code == 400
    assert "gold_rate" in bad.json()
