"""Zero-shot suggestions: the pure maths (label prompts, refinement on the pool, temperature)
and the cold-start ranking that stores them with their lineage."""

import numpy as np
import pytest

from active_learning.services.ranking import ranking_schedule
from active_learning.strategies import zero_shot_cold_start
from labeling.models import Item, Job, Prediction
from models_app.ml.zero_shot import (
    DEFAULT_TEMPERATURE,
    MIN_CALIBRATION_LABELS,
    fit_temperature,
    label_prompts,
    refine_label_vectors,
    softmax,
    zero_shot_fit,
)
from models_app.services.embeddings import embeddings_schedule
from tests.models_app.factories import label_items, topic_project
from tests.models_app.flywheel import run_pending


def _clusters(rng, n_per=200, dim=16, spread=0.35):
    centres = np.eye(dim)[:3]
    X = np.concatenate([c + spread * rng.standard_normal((n_per, dim)) for c in centres])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.repeat(np.arange(3), n_per)
    return X, y, centres


def test_label_prompts_use_the_description_when_there_is_one():
    assert label_prompts([("sport", "matches, athletes"), ("hi_tech", "")]) == [
        "sport: matches, athletes",
        "hi tech",
    ]


def test_refinement_on_the_pool_fixes_label_vectors_that_point_off_centre():
    # Given three clusters and label vectors that lean towards their neighbours' clusters
    rng = np.random.default_rng(0)
    X, y, centres = _clusters(rng)
    skewed = centres + 0.6 * np.roll(centres, 1, axis=0) + 0.2 * rng.standard_normal(centres.shape)
    before = ((X @ skewed.T).argmax(axis=1) == y).mean()

    # When the label vectors are refined on the (unlabeled) pool
    refined = refine_label_vectors(pool=X, label_vectors=skewed)

    # Then far more items are assigned to their own cluster
    after = ((X @ refined.T).argmax(axis=1) == y).mean()
    assert before < 0.8
    assert after > 0.95


def test_the_temperature_is_fitted_on_human_labels_only_once_there_are_enough():
    rng = np.random.default_rng(1)
    X, y, centres = _clusters(rng)
    few = rng.choice(len(y), MIN_CALIBRATION_LABELS - 1, replace=False)
    many = rng.choice(len(y), 60, replace=False)

    uncalibrated = zero_shot_fit(pool=X, label_vectors=centres, known=X[few], known_labels=y[few])
    calibrated = zero_shot_fit(pool=X, label_vectors=centres, known=X[many], known_labels=y[many])

    assert uncalibrated.temperature == DEFAULT_TEMPERATURE
    assert uncalibrated.calibrated_on == 0
    assert calibrated.calibrated_on == 60
    assert calibrated.temperature != DEFAULT_TEMPERATURE


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(2)
    sims = rng.uniform(-1, 1, size=(4000, 4))
    true_t = 0.2
    proba = softmax(sims / true_t)
    labels = np.array([rng.choice(4, p=p) for p in proba])
    assert fit_temperature(similarities=sims, labels=labels) == pytest.approx(true_t, rel=0.15)


def test_the_zero_shot_cold_start_serves_every_predicted_class_before_any_twice():
    rng = np.random.default_rng(3)
    n = 90
    proba = softmax(rng.standard_normal((n, 3)) * 3)
    proba[:60] = softmax(np.tile([5.0, 0.0, 0.0], (60, 1)))  # two thirds look like class 0
    representative = rng.uniform(0.01, 1.0, n)

    priorities = zero_shot_cold_start(representative=representative, proba=proba)

    head = np.argsort(-priorities)[:3]
    assert sorted(proba[head].argmax(axis=1).tolist()) == [0, 1, 2]
    assert len(set(priorities.tolist())) == n


@pytest.mark.django_db
def test_cold_start_stores_zero_shot_suggestions_with_their_lineage(
    no_broker, django_capture_on_commit_callbacks
):
    # Given a project whose labels describe the words of their topics, nothing labeled yet
    project = topic_project(per_topic=20)
    descriptions = {
        "sport": "match goal league striker cup coach season score",
        "tech": "software chip phone internet startup computer code app",
        "politics": "election minister vote party parliament policy law mp",
    }
    for label in project.labels.all():
        label.description = descriptions[label.value]
        label.save()
    project.label_set_version = 3
    project.save()

    # When its texts are embedded and the queue ranked
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    run_pending(no_broker)

    # Then every item has a zero-shot suggestion with the label-set version, mostly right
    predictions = Prediction.objects.filter(project=project, source_kind="zero_shot")
    assert predictions.count() == 60
    assert set(predictions.values_list("source_version", flat=True)) == {"3"}
    assert set(predictions.values_list("source_id", flat=True)) == {f"zero_shot:{project.pk}"}
    first = predictions.first()
    assert first.details["label_set_version"] == 3
    assert first.details["calibrated_on"] == 0
    assert 0 < first.confidence <= 1
    truth = dict(Item.objects.filter(project=project).values_list("id", "metadata__topic"))
    right = sum(p.labels == [truth[p.item_id]] for p in predictions)
    assert right / 60 > 0.8
    rank = Job.objects.filter(project=project, kind=Job.Kind.RANK).latest("created_at")
    assert rank.result["ranking"] == "zero_shot"
    # and the first items served cover every zero-shot class
    head = Item.objects.filter(project=project, status="open").order_by("-priority", "id")[:3]
    suggested = {Prediction.objects.get(item=i, source_kind="zero_shot").labels[0] for i in head}
    assert suggested == {"sport", "tech", "politics"}


@pytest.mark.django_db
def test_human_labels_calibrate_the_zero_shot_confidence_and_a_file_order_project_keeps_it(
    no_broker, django_capture_on_commit_callbacks
):
    project = topic_project(per_topic=20)
    label_items(list(Item.objects.filter(project=project).order_by("id")[:24]))
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    run_pending(no_broker)
    rank = Job.objects.filter(project=project, kind=Job.Kind.RANK).latest("created_at")
    assert rank.result["zero_shot_calibrated_on"] == 24
    assert Prediction.objects.filter(project=project, source_kind="zero_shot").count() == 36

    ordered = topic_project(per_topic=5, seed=1, queue_order="file")
    with django_capture_on_commit_callbacks(execute=True):
        ranking_schedule(project=ordered, reason="test")
    run_pending(no_broker)
    rank = Job.objects.filter(project=ordered, kind=Job.Kind.RANK).latest("created_at")
    assert rank.result["mode"] == "file_order"
    assert set(Item.objects.filter(project=ordered).values_list("priority", flat=True)) == {0.0}
    assert not Prediction.objects.filter(project=ordered).exists()


@pytest.mark.django_db
def test_new_label_descriptions_replace_old_zero_shot_suggestions_except_on_leased_items(
    no_broker, django_capture_on_commit_callbacks
):
    from labeling.services.projects import label_descriptions_update
    from labeling.services.queue import queue_next_item
    from tests.factories import MembershipFactory, UserFactory

    project = topic_project(per_topic=5)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    run_pending(no_broker)
    annotator = UserFactory()
    MembershipFactory(project=project, user=annotator)
    leased = queue_next_item(project=project, user=annotator).item

    with django_capture_on_commit_callbacks(execute=True):
        label_descriptions_update(project=project, descriptions={"sport": "football and cups"})
    run_pending(no_broker)

    versions = Prediction.objects.filter(project=project, source_kind="zero_shot")
    assert set(versions.filter(source_version="2").values_list("item_id", flat=True)) == set(
        Item.objects.filter(project=project).values_list("id", flat=True)
    )
    assert list(versions.filter(source_version="1").values_list("item_id", flat=True)) == [
        leased.pk
    ]


@pytest.mark.django_db
def test_the_model_page_says_how_often_the_zero_shot_suggestions_were_right(
    client, no_broker, django_capture_on_commit_callbacks
):
    from labeling.models import Membership
    from tests.factories import MembershipFactory, UserFactory

    project = topic_project(per_topic=10)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    run_pending(no_broker)
    items = list(Item.objects.filter(project=project).order_by("id")[:12])
    label_items(items)
    right = sum(
        Prediction.objects.get(item=i, source_kind="zero_shot").labels == [i.metadata["topic"]]
        for i in items
    )
    manager = UserFactory()
    MembershipFactory(project=project, user=manager, role=Membership.Role.MANAGER)
    client.force_login(manager)

    page = client.get(f"/projects/{project.pk}/model/").content.decode()

    assert 'id="zero-shot-summary"' in page
    assert f"right on {right} of the 12 items people have labelled since" in page
    assert "the default until 20 human labels exist" in page


@pytest.mark.django_db
def test_gold_items_get_suggestions_like_every_other_item_but_no_priority(
    no_broker, django_capture_on_commit_callbacks
):
    # Given a project with a gold item (its answer known, a final label set)
    from tests.models_app.flywheel import train_once

    project = topic_project(per_topic=10)
    gold = Item.objects.filter(project=project).order_by("id").first()
    Item.objects.filter(pk=gold.pk).update(
        is_gold=True,
        gold_labels=[gold.metadata["topic"]],
        final_labels=[gold.metadata["topic"]],
        priority=0.5,
    )

    # When the cold start ranks the queue, and again once a model scores it
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    run_pending(no_broker)
    zero_shot_first = Prediction.objects.filter(item=gold, source_kind="zero_shot").exists()
    others = list(Item.objects.filter(project=project, is_gold=False).order_by("id")[:15])
    label_items(others)
    train_once(project, no_broker, django_capture_on_commit_callbacks)

    # Then the gold item shows suggestions as an ordinary item would (nothing marks it out),
    # and its priority was never written by a ranking
    assert zero_shot_first
    assert Prediction.objects.filter(item=gold, source_kind="model").exists()
    gold.refresh_from_db()
    assert gold.priority == 0.5
