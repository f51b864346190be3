"""Embedding store, training, evaluate-before-promote, scoring and ranking, against the
database, with the deterministic hashing embedder and jobs run in-process."""

from pathlib import Path

import joblib
import numpy as np
import pytest
from django.conf import settings

from active_learning.services.ranking import al_settings_get
from labeling.models import Item, Job, Prediction
from models_app.models import Embedding, HeldOutItem, ModelVersion
from models_app.services.config import model_settings_get
from models_app.services.embeddings import embeddings_schedule
from models_app.services.versions import model_version_promote, model_version_rollback
from tests.factories import ItemFactory
from tests.models_app.factories import label_items, topic_project
from tests.models_app.flywheel import run_pending as _run_pending
from tests.models_app.flywheel import train_once as _train_once

pytestmark = pytest.mark.django_db


def test_each_distinct_text_is_embedded_once(no_broker, django_capture_on_commit_callbacks):
    # given a project where two items share a text
    project = topic_project(per_topic=3)
    ItemFactory(project=project, text=Item.objects.filter(project=project).first().text)
    # when the embedding job runs
    with django_capture_on_commit_callbacks(execute=True):
        job = embeddings_schedule(project=project)
    _run_pending(no_broker)
    job.refresh_from_db()
    # then every distinct text has exactly one vector, stored as float32 with the model name
    assert job.status == Job.Status.SUCCEEDED, job.error
    hashes = Item.objects.filter(project=project).values("content_hash").distinct()
    stored = Embedding.objects.filter(model_name="hashing", content_hash__in=hashes)
    assert stored.count() == hashes.count() == 9
    # (besides them, the three label prompts of the zero-shot suggestions)
    assert Embedding.objects.filter(model_name="hashing").count() == 9 + 3
    row = Embedding.objects.first()
    assert row.dim == 256
    assert len(bytes(row.vector)) == 256 * 4
    assert job.result["embedded"] == 9
    # and a second run embeds nothing
    with django_capture_on_commit_callbacks(execute=True):
        again = embeddings_schedule(project=project)
    _run_pending(no_broker)
    again.refresh_from_db()
    assert again.result["embedded"] == 0


def test_cold_start_ranks_by_representative_sampling(no_broker, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=10)
    al = al_settings_get(project=project)
    al.cold_start_clusters = 3
    al.save()
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    _run_pending(no_broker)
    rank_job = Job.objects.get(project=project, kind=Job.Kind.RANK)
    assert rank_job.status == Job.Status.SUCCEEDED, rank_job.error
    assert rank_job.result["mode"] == "cold_start"
    priorities = list(Item.objects.filter(project=project).values_list("priority", flat=True))
    assert len(set(priorities)) == len(priorities)  # a full order, not all zeros


def test_cascade_verification_items_head_the_queue_after_a_rerank(
    no_broker, django_capture_on_commit_callbacks
):
    # Given two auto-accepted items kept open for verification by a human
    project = topic_project(per_topic=10)
    items = list(Item.objects.filter(project=project).order_by("id"))
    verify = items[5:7]
    for item in verify:
        item.final_labels = [item.metadata["topic"]]
        item.final_lineage = {"method": "auto_accept", "machine": True, "verification": True}
    Item.objects.bulk_update(verify, ["final_labels", "final_lineage"])

    # When the queue is ranked
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    _run_pending(no_broker)

    # Then they come first
    head = list(
        Item.objects.filter(project=project, status="open")
        .order_by("-priority", "id")
        .values_list("id", flat=True)[:2]
    )
    assert sorted(head) == sorted(i.pk for i in verify)


def test_training_promotes_scores_and_reranks(no_broker, django_capture_on_commit_callbacks):
    # given 90 items, 45 of them labeled by humans
    project = topic_project(per_topic=30)
    al = al_settings_get(project=project)
    al.strategy = "least_confidence"
    al.diversity_batch = 0
    al.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:45])
    # when training runs
    job = _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # then a version with metrics, parameters, seed and artifact is active
    version = ModelVersion.objects.get(project=project)
    assert version.status == ModelVersion.Status.ACTIVE
    assert job.result["promoted"] is True
    assert version.classifier == "logistic_regression"
    assert version.params["class_weight"] == "balanced"
    assert version.seed == 0
    # 15 labels per class: a held-out split would keep 3 of each, too few to judge a model, so
    # nothing is held out: it trains on all 45 and is evaluated by 5-fold cross-validation
    assert (version.train_size, version.holdout_size, version.holdout_source) == (45, 0, "cv")
    assert not HeldOutItem.objects.filter(project=project).exists()
    for key in ("accuracy", "macro_f1", "log_loss", "ece", "per_class", "confusion"):
        assert key in version.metrics
    assert version.metrics["evaluation"] == "cross_validation"
    assert version.metrics["folds"] == 5
    assert version.metrics["n"] == 45
    folds = version.metrics["fold_macro_f1"]
    assert len(folds) == 5
    assert version.metrics["macro_f1"] == pytest.approx(np.mean(folds))
    assert version.metrics["macro_f1_std"] == pytest.approx(np.std(folds))
    assert version.metrics["macro_f1_min"] == min(folds)
    assert version.metrics["macro_f1_max"] == max(folds)
    assert version.metrics["macro_f1"] > 0.8
    assert "5-fold cross-validation on 45 labels" in version.reason
    # and the scoring job stored a prediction per unlabeled item with the version
    score = Job.objects.get(project=project, kind=Job.Kind.SCORE)
    assert score.status == Job.Status.SUCCEEDED, score.error
    predictions = Prediction.objects.filter(project=project, source_kind="model")
    assert predictions.count() == 45
    assert set(predictions.values_list("source_version", flat=True)) == {"1"}
    # and the queue is ordered by least confidence: the top item is the least confident one
    top = Item.objects.filter(project=project, status="open").order_by("-priority", "id").first()
    least = predictions.order_by("confidence").first()
    assert top.pk == least.item_id
    assert top.priority - 10 * score.pk == pytest.approx(1 - least.confidence, abs=1e-4)


def test_a_worse_model_is_rejected_with_its_reason(no_broker, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:60])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # when the classifier is made too weak (one decision stump for three classes) and retrained
    settings_row = model_settings_get(project=project)
    settings_row.classifier = "random_forest"
    settings_row.classifier_params = {"n_estimators": 1, "max_depth": 1}
    settings_row.promote_tolerance = 0.0
    settings_row.save()
    label_items(items[60:63])
    job = _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # then it is kept as rejected with the reason, and v1 stays active
    v1, v2 = ModelVersion.objects.filter(project=project).order_by("number")
    assert v1.status == ModelVersion.Status.ACTIVE
    assert v2.status == ModelVersion.Status.REJECTED
    assert "worse than the active model beyond the noise" in v2.reason
    assert job.result["promoted"] is False
    assert v2.metrics["active_on_same_holdout"]["version"] == 1
    # and the reason quotes both models' figures on the same 63 labels, the candidate's being
    # the macro-F1 the versions table shows for it
    comparison = v2.metrics["comparison"]
    assert comparison["n"] == 63
    assert comparison["new"] == pytest.approx(v2.metrics["macro_f1"])
    assert comparison["high"] < 0
    assert f"v2 {v2.metrics['macro_f1']:.3f} vs v1 {comparison['old']:.3f}" in v2.reason
    assert "on the same 63 labels (5-fold cross-validation" in v2.reason


def test_promote_by_hand_and_roll_back(no_broker, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:45])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    label_items(items[45:60])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    v1, v2 = ModelVersion.objects.filter(project=project).order_by("number")
    assert v2.status == ModelVersion.Status.ACTIVE
    with django_capture_on_commit_callbacks(execute=True):
        model_version_rollback(project=project)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == ("active", "retired")
    _run_pending(no_broker)
    assert set(
        Prediction.objects.filter(project=project, source_kind="model").values_list(
            "source_version", flat=True
        )
    ) == {"1"}
    with django_capture_on_commit_callbacks(execute=True):
        model_version_promote(version=v2, reason="test")
    v2.refresh_from_db()
    assert v2.status == "active"


def test_machine_labels_train_but_are_never_held_out(no_broker, django_capture_on_commit_callbacks):
    # 30 machine labels and 150 human ones: 60 per class, 12 of each held out (all human)
    project = topic_project(per_topic=70)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30], machine=True)
    label_items(items[30:180])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    held = HeldOutItem.objects.filter(project=project).values_list("item_id", flat=True)
    assert len(held) == 36
    assert not set(held) & {i.pk for i in items[:30]}
    version = ModelVersion.objects.get(project=project)
    assert version.train_size == 180 - len(held)


def test_machine_labels_are_never_tested_on_in_cross_validation(
    no_broker, django_capture_on_commit_callbacks
):
    project = topic_project(per_topic=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30], machine=True)
    label_items(items[30:60])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    version = ModelVersion.objects.get(project=project)
    # all 60 train; only the 30 human labels are cross-validated
    assert (version.train_size, version.metrics["n"]) == (60, 30)
    assert np.array(version.metrics["confusion"]).sum() == 30


def test_machine_label_weight_zero_leaves_auto_accepted_labels_out(
    no_broker, django_capture_on_commit_callbacks
):
    # Given 30 auto-accepted (machine) labels and 30 human ones, machine weight 0
    project = topic_project(per_topic=30)
    settings = model_settings_get(project=project)
    settings.machine_label_weight = 0.0
    settings.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30], machine=True)
    label_items(items[30:60])

    _train_once(project, no_broker, django_capture_on_commit_callbacks)

    # Then only the human labels train (minus the held-out share)
    held = HeldOutItem.objects.filter(project=project).count()
    version = ModelVersion.objects.get(project=project)
    assert version.train_size == 30 - held


def test_weight_by_confidence_passes_confidences_as_sample_weights(
    no_broker, django_capture_on_commit_callbacks, monkeypatch
):
    # Given labels of different confidences and confidence weighting on
    project = topic_project(per_topic=30)
    settings = model_settings_get(project=project)
    settings.weight_by_confidence = True
    settings.machine_label_weight = 0.5
    settings.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:40])
    label_items(items[40:60], machine=True)
    Item.objects.filter(pk__in=[i.pk for i in items[:20]]).update(final_confidence=0.6)
    seen = {}
    import models_app.services.training as training

    real_fit = training.classifier_fit

    def spy(**kwargs):
        seen["weights"] = sorted(set(kwargs["sample_weight"]))
        return real_fit(**kwargs)

    monkeypatch.setattr(training, "classifier_fit", spy)

    _train_once(project, no_broker, django_capture_on_commit_callbacks)

    # Then human labels weigh their confidence and machine labels half of theirs
    assert seen["weights"] == [0.5, 0.6, 1.0]


def test_gold_items_are_the_held_out_set(no_broker, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    for item in items[:12]:
        item.is_gold = True
        item.gold_labels = [item.metadata["topic"]]
    Item.objects.bulk_update(items[:12], ["is_gold", "gold_labels"])
    label_items(items[12:50])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    version = ModelVersion.objects.get(project=project)
    assert version.holdout_source == "gold"
    assert version.holdout_size == 12
    assert version.train_size == 38


def test_too_few_labels_stays_in_cold_start(no_broker, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=10)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:4])
    job = _train_once(project, no_broker, django_capture_on_commit_callbacks)
    assert job.result["cold_start"] is True
    assert not ModelVersion.objects.filter(project=project).exists()
    assert Job.objects.get(project=project, kind=Job.Kind.RANK).status == "succeeded"


def test_first_model_is_promoted_before_a_held_out_set_exists(
    no_broker, django_capture_on_commit_callbacks
):
    # given 4 labels per topic: floor(0.2 x 4) = 0, so nothing can be held out yet
    project = topic_project(per_topic=10)
    settings_row = model_settings_get(project=project)
    settings_row.min_labels = 6
    settings_row.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:12])
    # when training runs, the model becomes active and ranks the queue; it is not evaluated
    # on a held-out set but by 4-fold cross-validation on the 12 labels
    job = _train_once(project, no_broker, django_capture_on_commit_callbacks)
    version = ModelVersion.objects.get(project=project)
    assert job.result["promoted"] is True
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.holdout_size == 0
    assert version.metrics["folds"] == 4
    assert "first model" in version.reason
    assert "4-fold cross-validation on 12 labels" in version.reason
    assert Job.objects.get(project=project, kind=Job.Kind.SCORE).status == "succeeded"


def test_vectors_snapshot_matches_the_store(no_broker, django_capture_on_commit_callbacks):
    from models_app.ml.embedding import HashingEmbedder
    from models_app.services.vectors import vectors_load

    project = topic_project(per_topic=5)
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    _run_pending(no_broker)
    vectors = vectors_load(project=project, model_name="hashing")
    item = Item.objects.filter(project=project).order_by("?").first()
    expected = HashingEmbedder().encode([item.text])[0]
    np.testing.assert_allclose(vectors.vectors([item.pk])[0], expected, rtol=1e-6)
    # a new item makes the snapshot stale: it is rebuilt (after embedding) on the next load
    ItemFactory(project=project, text="brand new text")
    with django_capture_on_commit_callbacks(execute=True):
        embeddings_schedule(project=project)
    _run_pending(no_broker)
    assert len(vectors_load(project=project, model_name="hashing").item_ids) == 16


def test_a_slightly_worse_model_within_the_noise_is_promoted(
    no_broker, django_capture_on_commit_callbacks
):
    # Given v1 (logistic regression, perfect on these texts) trained on 60 labels
    project = topic_project(per_topic=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:60])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # When a small random forest, which misses a few of the 63 labels, is trained with no
    # tolerance at all
    settings_row = model_settings_get(project=project)
    settings_row.classifier = "random_forest"
    settings_row.classifier_params = {"n_estimators": 20, "max_depth": 6}
    settings_row.promote_tolerance = 0.0
    settings_row.save()
    label_items(items[60:63])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # Then it is lower on the same items, but not beyond the noise: it is promoted, and the
    # reason gives both figures and the interval
    v1, v2 = ModelVersion.objects.filter(project=project).order_by("number")
    comparison = v2.metrics["comparison"]
    assert comparison["new"] < comparison["old"]
    assert comparison["low"] < comparison["difference"] < 0 <= comparison["high"]
    assert (v1.status, v2.status) == ("retired", "active")
    assert f"v2 {comparison['new']:.3f} vs v1 {comparison['old']:.3f}" in v2.reason
    assert f"95% interval {comparison['low']:+.3f}..{comparison['high']:+.3f}" in v2.reason


def test_past_the_threshold_the_fixed_held_out_set_is_used(
    no_broker, django_capture_on_commit_callbacks
):
    project = topic_project(per_topic=60)
    items = list(Item.objects.filter(project=project).order_by("id"))
    # Given v1, cross-validated and trained on all of 45 labels
    label_items(items[:45])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # When the project reaches 150 labels (50 per class, 10 of each can be held out)
    label_items(items[45:150])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # Then the held-out set forms: v2 is evaluated on it and never trained on it
    v2 = ModelVersion.objects.get(project=project, number=2)
    held = set(HeldOutItem.objects.filter(project=project).values_list("item_id", flat=True))
    assert len(held) == 30
    assert (v2.holdout_source, v2.holdout_size, v2.train_size) == ("split", 30, 120)
    assert v2.metrics["evaluation"] == "held_out"
    assert v2.metrics["n"] == 30
    bundle = joblib.load(Path(settings.MEDIA_ROOT) / v2.artifact)
    assert not held & set(bundle["train_item_ids"])
    # v1 had been trained on some of those items: its recipe is re-fit without them to compare
    assert v2.metrics["comparison"]["refit"] is True
    assert v2.metrics["comparison"]["n"] == 30
    assert "on the same 30 held-out items (v1 re-fit without them" in v2.reason
    # When more labels arrive, the set keeps every item it had and grows from the new ones
    label_items(items[150:165])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    v3 = ModelVersion.objects.get(project=project, number=3)
    held_now = set(HeldOutItem.objects.filter(project=project).values_list("item_id", flat=True))
    assert held <= held_now
    assert held_now - held <= {i.pk for i in items[150:165]}
    assert v3.holdout_size == len(held_now) == 33
    # v2 never saw a held-out item: the stored model itself is compared
    assert v3.metrics["comparison"]["refit"] is False
    assert v3.metrics["comparison"]["version"] == 2
    assert "on the same 33 held-out items;" in v3.reason


def test_an_active_version_whose_vectors_are_gone_is_re_fit_on_the_current_embedding(
    no_broker, django_capture_on_commit_callbacks
):
    # Given v1 recorded under an embedding model whose vectors are no longer stored (renamed)
    project = topic_project(per_topic=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:45])
    _train_once(project, no_broker, django_capture_on_commit_callbacks)
    ModelVersion.objects.filter(project=project, number=1).update(embedding_model="gone-model")
    # When v2 trains
    label_items(items[45:60])
    job = _train_once(project, no_broker, django_capture_on_commit_callbacks)
    # Then the training succeeds and v1's recipe was compared on the current embedding
    v2 = ModelVersion.objects.get(project=project, number=2)
    assert job.result["promoted"] is True
    assert v2.metrics["comparison"]["own_embedding"] is False
    assert v2.metrics["comparison"]["n"] == 60
