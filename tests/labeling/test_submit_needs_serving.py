"""A submit needs the item to have been handed to the submitting user (a lease from `next/`
or an undo, live or expired) or an earlier answer of theirs to edit: nobody answers an item by
id without being served it, gold items included. On PostgreSQL the rule is inside the one
statement `labeling_annotation_submit` (migration labeling/0011); elsewhere in the ORM path.
Both the DRF view and the annotation loop's fast path give the same 403."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.api.fastpath import AnnotationLoopFastPath
from labeling.errors import NotPermitted
from labeling.models import Annotation, AnnotationEvent, Assignment, Item
from labeling.services.annotations import annotation_submit
from labeling.services.queue import queue_next_item
from tests.factories import AssignmentFactory, ItemFactory, UserFactory, api_token
from tests.labeling.test_api_fastpath import Spy, _keep_test_transaction, call, environ  # noqa: F401

pytestmark = pytest.mark.django_db


def _written():
    return (
        Annotation.objects.count(),
        AnnotationEvent.objects.count(),
        list(Assignment.objects.values_list("item_id", "user_id", "status")),
        list(Item.objects.order_by("pk").values_list("pk", "annotation_count", "status")),
    )


@pytest.fixture
def gold(project):
    return ItemFactory(project=project, is_gold=True, gold_labels=["pos"], priority=-5)


@pytest.mark.parametrize("kind", ["ordinary", "gold"])
def test_an_item_never_served_is_refused_and_nothing_is_written(project, annotator, gold, kind):
    item = gold if kind == "gold" else ItemFactory(project=project)
    before = _written()

    with pytest.raises(NotPermitted) as refused:
        annotation_submit(project=project, user=annotator, item_id=item.pk, labels=["pos"])

    assert refused.value.extra == {"item": item.pk}
    assert _written() == before


def test_the_item_next_handed_out_is_accepted(project, annotator):
    ItemFactory(project=project)
    assignment = queue_next_item(project=project, user=annotator)

    annotation = annotation_submit(
        project=project, user=annotator, item_id=assignment.item_id, labels=["pos"]
    )

    assert annotation.item_id == assignment.item_id


def test_a_served_gold_item_is_accepted_even_after_its_lease_expired(project, annotator, gold):
    past = timezone.now() - timedelta(hours=2)
    AssignmentFactory(
        item=gold, user=annotator, leased_at=past, expires_at=past + timedelta(minutes=5)
    )

    annotation = annotation_submit(project=project, user=annotator, item_id=gold.pk, labels=["neg"])

    assert annotation.pk is not None


def test_another_users_lease_does_not_let_me_submit(project, annotator):
    item = ItemFactory(project=project)
    AssignmentFactory(item=item, user=UserFactory())

    with pytest.raises(NotPermitted):
        annotation_submit(project=project, user=annotator, item_id=item.pk, labels=["pos"])


def test_editing_my_earlier_answer_needs_no_new_lease(project, annotator):
    ItemFactory(project=project)
    assignment = queue_next_item(project=project, user=annotator)
    first = annotation_submit(
        project=project, user=annotator, item_id=assignment.item_id, labels=["pos"]
    )

    again = annotation_submit(
        project=project, user=annotator, item_id=assignment.item_id, labels=["neg"]
    )

    assert again.pk == first.pk
    assert again.labels == ["neg"]


def _submit_path(project, item):
    return reverse("api:item-submit", kwargs={"pid": project.pk, "iid": item.pk})


NOT_SERVED = "This item was not handed to you; ask for one with next/."


@pytest.mark.parametrize("kind", ["ordinary", "gold"])
def test_the_view_answers_403(project, annotator, gold, kind):
    item = gold if kind == "gold" else ItemFactory(project=project)
    before = _written()
    client = APIClient()
    client.force_login(annotator)

    response = client.post(_submit_path(project, item), {"labels": ["pos"]}, format="json")

    assert response.status_code == 403
    assert response.json()["detail"] == NOT_SERVED
    assert _written() == before


@pytest.mark.parametrize("kind", ["ordinary", "gold"])
def test_the_fast_path_hands_the_refusal_to_the_view(project, annotator, gold, kind):
    item = gold if kind == "gold" else ItemFactory(project=project)
    before = _written()
    token = api_token(annotator)
    django = Spy()

    status, _, body = call(
        AnnotationLoopFastPath(django),
        environ(_submit_path(project, item), {"labels": ["pos"]}, token=token),
    )

    assert (status, django.calls) == (403, 1)  # refused before any write: the view answers
    assert json.loads(body)["detail"] == NOT_SERVED
    assert _written() == before
