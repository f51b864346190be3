"""Dashboard page, find-similar page and API, training/promotion API, mining: permissions and
behaviour against the database (hashing embedder, jobs run in-process)."""

import pytest
from django.urls import reverse

from active_learning.models import MinedError
from active_learning.services.mining import mining_check
from active_learning.services.ranking import al_settings_get
from labeling.models import Item, Job, Membership, Prediction
from models_app.ml.embedding import HashingEmbedder
from models_app.models import ModelVersion
from tests.factories import MembershipFactory, UserFactory
from tests.models_app.factories import label_items, topic_project
from tests.models_app.flywheel import train_once

pytestmark = pytest.mark.django_db


def _member(project, role, name):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role=role)
    return user


@pytest.fixture
def trained(no_broker, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=20)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30])
    train_once(project, no_broker, django_capture_on_commit_callbacks)
    return project


def test_dashboard_permissions(client, trained):
    url = reverse("active_learning:dashboard", args=[trained.pk])
    client.force_login(UserFactory(username="stranger"))
    assert client.get(url).status_code == 404
    client.force_login(_member(trained, Membership.Role.ANNOTATOR, "ann"))
    assert client.get(url).status_code == 403
    client.force_login(_member(trained, Membership.Role.REVIEWER, "rev"))
    page = client.get(url)
    assert page.status_code == 200
    assert b"Learning curve" in page.content
    assert b"retrain-now" not in page.content  # buttons are for managers
    client.force_login(_member(trained, Membership.Role.MANAGER, "boss"))
    page = client.get(url)
    assert b"retrain-now" in page.content
    assert page.context["chart_data"]["curve"][0]["version"] == 1
    assert sum(page.context["chart_data"]["distribution"].values()) == 30


def test_retrain_now_api(client, trained, no_broker):
    url = reverse("models_app_api:model-train", args=[trained.pk])
    client.force_login(_member(trained, Membership.Role.ANNOTATOR, "ann"))
    assert client.post(url).status_code == 403
    client.force_login(_member(trained, Membership.Role.MANAGER, "boss"))
    response = client.post(url)
    assert response.status_code == 202
    assert response.json()["started"] is True
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.kind == Job.Kind.TRAIN
    assert job.created_by.username == "boss"
    # a second press while it runs is folded into a retrain
    assert client.post(url).json() == {"started": False, "job": None}


def test_model_versions_and_promote_api(
    client, trained, django_capture_on_commit_callbacks, no_broker
):
    client.force_login(_member(trained, Membership.Role.MANAGER, "boss"))
    versions = client.get(reverse("models_app_api:model-version-list", args=[trained.pk])).json()
    assert versions[0]["status"] == "active"
    assert "macro_f1" in versions[0]["metrics"]
    promote = reverse("models_app_api:model-version-promote", args=[trained.pk, 1])
    response = client.post(promote)
    assert response.status_code == 400
    assert "already active" in response.json()["detail"]
    rollback = client.post(reverse("models_app_api:model-version-rollback", args=[trained.pk]))
    assert rollback.status_code == 400
    assert (
        client.post(
            reverse("models_app_api:model-version-promote", args=[trained.pk, 9])
        ).status_code
        == 404
    )


def test_find_similar_api_and_page(client, trained):
    item = Item.objects.filter(project=trained, final_labels__isnull=True).first()
    api = reverse("active_learning_api:item-similar", args=[trained.pk, item.pk])
    client.force_login(_member(trained, Membership.Role.ANNOTATOR, "ann"))
    assert client.get(api).status_code == 403  # not an item the annotator holds
    client.force_login(_member(trained, Membership.Role.REVIEWER, "rev"))
    rows = client.get(api, {"k": 5}).json()
    assert len(rows) == 5
    assert item.pk not in [r["id"] for r in rows]
    sims = [r["similarity"] for r in rows]
    assert sims == sorted(sims, reverse=True)
    # and they are the true nearest neighbours (brute force over every other item)
    others = list(Item.objects.filter(project=trained).exclude(pk=item.pk).order_by("id"))
    embedder = HashingEmbedder()
    sims_all = embedder.encode([o.text for o in others]) @ embedder.encode([item.text])[0]
    best = sorted(zip(sims_all.tolist(), [o.pk for o in others], strict=True), reverse=True)[:5]
    assert sims == pytest.approx([round(s, 4) for s, _ in best], abs=1e-4)
    page = client.get(
        reverse("active_learning:similar", args=[trained.pk]), {"item": item.external_id}
    )
    assert page.status_code == 200
    assert len(page.context["pairs"]) == 10
    missing = client.get(reverse("active_learning:similar", args=[trained.pk]), {"item": "nope"})
    assert b"No item" in missing.content


def test_a_confident_mistake_is_flagged_and_its_neighbours_boosted(trained):
    # given an unlabeled item with a confident model prediction (for this small project's
    # model, confident means at least 0.5)
    al = al_settings_get(project=trained)
    al.mining_confidence = 0.5
    al.save()
    prediction = (
        Prediction.objects.filter(project=trained, source_kind="model")
        .order_by("-confidence")
        .first()
    )
    assert prediction.confidence >= 0.5
    item = prediction.item
    before = dict(Item.objects.filter(project=trained).values_list("id", "priority"))
    # when a human labels it with another class
    wrong = next(v for v in ["sport", "tech", "politics"] if v not in prediction.labels)
    item.final_labels = [wrong]
    item.final_lineage = {"method": "single_annotator", "version": 1}
    item.save()
    flagged = mining_check(project=trained, item_ids=[item.pk])
    # then it is flagged and its nearest unlabeled neighbours got a higher priority
    assert len(flagged) == 1
    error = MinedError.objects.get(item=item)
    assert error.predicted == prediction.labels
    assert error.human == [wrong]
    assert len(error.neighbours) == 10
    after = dict(Item.objects.filter(project=trained).values_list("id", "priority"))
    assert all(after[n] > before[n] for n in error.neighbours)
    untouched = set(after) - set(error.neighbours) - {item.pk}
    assert all(after[i] == before[i] for i in untouched)
    # and a label that agrees with the model flags nothing
    agreeing = (
        Prediction.objects.filter(project=trained, source_kind="model")
        .exclude(item=item)
        .order_by("-confidence")
        .first()
    )
    Item.objects.filter(pk=agreeing.item_id).update(final_labels=agreeing.labels)
    assert mining_check(project=trained, item_ids=[agreeing.item_id]) == []
    assert ModelVersion.objects.filter(project=trained).count() == 1


def test_mining_is_queued_only_for_labels_on_confident_predictions(
    trained, no_broker, django_capture_on_commit_callbacks
):
    # given the model's most and least confident predictions on unlabeled items
    from active_learning.services.mining import mining_worth_checking
    from labeling.services.hooks import after_final_labels_changed

    al = al_settings_get(project=trained)
    al.mining_confidence = 0.5
    al.save()
    model = Prediction.objects.filter(project=trained, source_kind="model")
    confident = model.order_by("-confidence").first()
    unsure = model.order_by("confidence").first()
    assert confident.confidence >= 0.5 > unsure.confidence
    for prediction in (confident, unsure):
        Item.objects.filter(pk=prediction.item_id).update(final_labels=["sport"])

    # then only the confident one is worth a mining task
    assert mining_worth_checking(project_id=trained.pk, item_ids=[confident.item_id])
    assert not mining_worth_checking(project_id=trained.pk, item_ids=[unsure.item_id])
    assert not mining_worth_checking(project_id=trained.pk, item_ids=[])

    # and the hook after a final label queues the task for that one only
    no_broker.clear()
    for prediction in (unsure, confident):
        with django_capture_on_commit_callbacks(execute=True):
            after_final_labels_changed(project=trained, item_ids=[prediction.item_id])
    assert [event for event in no_broker if event[0] == "mine"] == [("mine", [confident.item_id])]
