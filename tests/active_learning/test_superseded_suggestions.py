"""A suggestion on an annotator's screen stays acceptable after a newer model is promoted: the
re-rank keeps the predictions of leased items and of the previous version, the submit records
the suggestion's own version, and a suggestion deleted anyway does not cost the answer.

Runs on SQLite and, with DATABASE_URL=postgres://..., on PostgreSQL (where the submit is the
`labeling_annotation_submit` database function)."""

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from active_learning.services.ranking import al_settings_get, ranking_schedule
from labeling.models import Annotation, Item, Membership, Prediction
from labeling.services.annotations import annotation_submit
from labeling.services.submit import submit_postgresql
from models_app.models import ModelVersion
from models_app.services.versions import model_version_promote
from tests.factories import ItemFactory, MembershipFactory, UserFactory
from tests.models_app.factories import label_items, topic_project
from tests.models_app.flywheel import run_pending, train_once

pytestmark = pytest.mark.django_db


def _new_version(project, items, no_broker, capture) -> ModelVersion:
    """Label `items`, train, and make the new version the active one (promoted by the
    evaluation or, if it was judged worse, by hand), with the pool re-ranked by it."""
    label_items(items)
    train_once(project, no_broker, capture)
    version = ModelVersion.objects.filter(project=project).order_by("-number").first()
    if version.status != ModelVersion.Status.ACTIVE:
        with capture(execute=True):
            model_version_promote(version=version, reason="test")
            ranking_schedule(project=project, reason="test")
        run_pending(no_broker)
    assert ModelVersion.objects.get(project=project, status="active") == version
    return version


@pytest.fixture
def scene(no_broker, django_capture_on_commit_callbacks):
    """A project with v1 active and its suggestions on the pool, and an annotator's client."""
    project = topic_project(per_topic=25)
    al = al_settings_get(project=project)
    al.diversity_batch = 0
    al.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    v1 = _new_version(project, items[:30], no_broker, django_capture_on_commit_callbacks)
    annotator = UserFactory(username="screen")
    MembershipFactory(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    client = APIClient()
    client.force_authenticate(annotator)
    return project, items, v1, annotator, client


def test_a_suggestion_on_screen_is_accepted_after_two_promotions(
    scene, no_broker, django_capture_on_commit_callbacks
):
    # Given an item leased with v1's suggestion on screen (the source said in words)
    project, items, v1, annotator, client = scene
    shown = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    # (the zero-shot suggestion of the label set may be shown beside it, by confidence)
    (suggestion,) = [s for s in shown["suggestions"] if s["source_kind"] == "model"]
    assert suggestion["source"] == f"model v1, trained on {v1.train_size} labels"
    assert v1.train_size > 0
    item_id = shown["item"]["id"]

    # When v2 and then v3 are promoted and each re-rank prunes older predictions
    capture = django_capture_on_commit_callbacks
    others = [i for i in items[30:] if i.pk != item_id]
    _new_version(project, others[:15], no_broker, capture)
    v3 = _new_version(project, others[15:30], no_broker, capture)

    # Then v1's predictions are gone except on the leased item; v2's are kept as the previous
    versions = {
        (p.item_id == item_id, p.source_version)
        for p in Prediction.objects.filter(project=project, source_kind="model")
    }
    assert versions == {(True, "1"), (True, "2"), (True, "3"), (False, "2"), (False, "3")}

    # When the annotator accepts the suggestion they were shown
    response = client.post(
        f"/api/projects/{project.pk}/items/{item_id}/submit/",
        {"labels": suggestion["labels"], "suggestion_id": suggestion["id"]},
        format="json",
    )

    # Then the answer is saved, with the v1 prediction (its own version) as its lineage
    assert response.status_code == 201, response.content
    annotation = Annotation.objects.select_related("suggestion").get(annotator=annotator)
    assert annotation.suggestion_id == suggestion["id"]
    assert annotation.suggestion.source_version == "1"
    assert annotation.labels == suggestion["labels"]
    assert v3.number == 3
    # and a later re-rank keeps it as the annotation's lineage though nobody leases it now
    with django_capture_on_commit_callbacks(execute=True):
        ranking_schedule(project=project, reason="test")
    run_pending(no_broker)
    assert Prediction.objects.filter(pk=suggestion["id"]).exists()


def test_the_previous_versions_suggestion_survives_a_promotion_without_a_lease(
    scene, no_broker, django_capture_on_commit_callbacks
):
    # Given v1's suggestion read for an item whose lease has since been released
    project, items, _v1, _annotator, client = scene
    shown = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    item_id = shown["item"]["id"]
    (suggestion,) = [s for s in shown["suggestions"] if s["source_kind"] == "model"]
    client.post(f"/api/projects/{project.pk}/items/{item_id}/skip/")

    # When v2 is promoted and re-ranks (pruning)
    others = [i for i in items[30:] if i.pk != item_id]
    _new_version(project, others[:15], no_broker, django_capture_on_commit_callbacks)

    # Then v1's prediction is still there, so accepting it later keeps its lineage
    assert Prediction.objects.filter(pk=suggestion["id"], source_version="1").exists()


def test_an_accepted_suggestion_deleted_meanwhile_still_saves_the_answer(project, annotator):
    # Given a leased item whose suggestion was deleted after it was shown
    client = APIClient()
    client.force_authenticate(annotator)
    item = ItemFactory(project=project)
    gone = Prediction.objects.create(
        item=item, project=project, source_kind="model", source_id="clf", labels=["pos"]
    )
    shown = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    gone_id = gone.pk
    assert [s["id"] for s in shown["suggestions"]] == [gone_id]
    gone.delete()

    # When the annotator accepts it
    response = client.post(
        f"/api/projects/{project.pk}/items/{item.pk}/submit/",
        {"labels": ["pos"], "suggestion_id": gone_id},
        format="json",
    )

    # Then their answer is saved (without the lineage that no longer exists), not refused
    assert response.status_code == 201, response.content
    annotation = Annotation.objects.get(annotator=annotator)
    assert (annotation.item_id, annotation.labels, annotation.suggestion_id) == (
        item.pk,
        ["pos"],
        None,
    )
    item.refresh_from_db()
    assert (item.annotation_count, item.status) == (1, Item.Status.DONE)


@pytest.mark.postgres
def test_postgresql_the_database_function_refuses_a_deleted_suggestion_but_the_submit_saves(
    project, annotator
):
    if connection.vendor != "postgresql":
        pytest.skip("the submit function is PostgreSQL's: set DATABASE_URL=postgres://...")
    # Given a leased item and the id of a suggestion deleted since it was shown
    from labeling.services.queue import queue_next_item

    item = ItemFactory(project=project)
    gone = Prediction.objects.create(
        item=item, project=project, source_kind="model", source_id="clf", labels=["neg"]
    )
    queue_next_item(project=project, user=annotator)
    gone_id = gone.pk
    gone.delete()

    # When the database function is asked directly, it refuses and writes nothing
    refused = submit_postgresql(
        project=project,
        user_id=annotator.pk,
        item_id=item.pk,
        labels=["neg"],
        time_spent_ms=0,
        suggestion_id=gone_id,
        now=timezone.now(),
    )
    assert refused.outcome == "bad_suggestion"
    assert not Annotation.objects.exists()

    # but the service saves the annotator's answer
    annotation = annotation_submit(
        project=project, user=annotator, item_id=item.pk, labels=["neg"], suggestion_id=gone_id
    )
    assert Annotation.objects.get().pk == annotation.pk
    assert annotation.suggestion_id is None
