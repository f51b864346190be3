"""Retrain triggers: every N new final labels through the core's hook, "retrain now", and the
per-project training lock (sequentially in both modes, concurrently on PostgreSQL)."""

import threading

import pytest
from django.db import connection, connections

from labeling.models import Item, Job
from labeling.services.annotations import annotation_submit
from labeling.services.hooks import after_final_labels_changed
from labeling.services.queue import queue_next_item
from models_app.models import ModelSettings
from models_app.services.config import model_settings_get
from models_app.services.training import training_lock_release, training_request
from tests.factories import MembershipFactory, UserFactory
from tests.models_app.factories import TOPICS, topic_project


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("models_app.tasks.train_task_enqueue", lambda job_id: calls.append(job_id))
    monkeypatch.setattr("active_learning.tasks.mine_task_enqueue", lambda **kw: None)
    return calls


@pytest.mark.django_db
def test_retrain_after_every_n_new_final_labels(sent, django_capture_on_commit_callbacks):
    # given a project that retrains after 3 new final labels
    project = topic_project(per_topic=5)
    settings_row = model_settings_get(project=project)
    settings_row.retrain_every = 3
    settings_row.save()
    user = UserFactory()
    MembershipFactory(project=project, user=user)

    def label_next():
        with django_capture_on_commit_callbacks(execute=True):
            assignment = queue_next_item(project=project, user=user)
            annotation_submit(
                project=project,
                user=user,
                item_id=assignment.item.pk,
                labels=[assignment.item.metadata["topic"]],
            )

    # when an annotator gives two labels, nothing is trained
    label_next()
    label_next()
    assert sent == []
    assert ModelSettings.objects.get(project=project).labels_since_training == 2
    # the third label queues one training job and resets the count
    label_next()
    assert len(sent) == 1
    job = Job.objects.get(pk=sent[0])
    assert job.kind == Job.Kind.TRAIN
    assert "3 new labels" in job.params["reason"]
    assert ModelSettings.objects.get(project=project).labels_since_training == 0


@pytest.mark.django_db
def test_training_starts_as_soon_as_cold_start_can_end(sent, django_capture_on_commit_callbacks):
    # given a project that retrains every 50 labels but can leave cold start at 6 (2 per topic)
    project = topic_project(per_topic=5)
    settings_row = model_settings_get(project=project)
    settings_row.retrain_every = 50
    settings_row.min_labels = 6
    settings_row.save()
    items = {t: list(Item.objects.filter(project=project, metadata__topic=t)) for t in TOPICS}

    def label(item):
        with django_capture_on_commit_callbacks(execute=True):
            item.final_labels = [item.metadata["topic"]]
            item.final_lineage = {"method": "single_annotator", "version": 1}
            item.save(update_fields=["final_labels", "final_lineage"])
            after_final_labels_changed(project=project, item_ids=[item.pk])

    # when sport and tech have 2 labels each and politics 1, nothing is trained
    for topic, n in [("sport", 2), ("tech", 2), ("politics", 1)]:
        for item in items[topic][:n]:
            label(item)
    assert sent == []
    # the label that gives every class 2 examples starts training, long before 50 labels
    label(items["politics"][1])
    assert len(sent) == 1
    assert "leave cold start" in Job.objects.get(pk=sent[0]).params["reason"]


@pytest.mark.django_db
def test_machine_labels_weighted_zero_do_not_end_cold_start(
    sent, django_capture_on_commit_callbacks
):
    # given a project that leaves cold start at 6 labels (2 per topic), machine labels weight 0
    project = topic_project(per_topic=5)
    settings_row = model_settings_get(project=project)
    settings_row.retrain_every = 50
    settings_row.min_labels = 6
    settings_row.machine_label_weight = 0.0
    settings_row.save()
    items = {t: list(Item.objects.filter(project=project, metadata__topic=t)) for t in TOPICS}

    def label(item, *, machine):
        with django_capture_on_commit_callbacks(execute=True):
            item.final_labels = [item.metadata["topic"]]
            item.final_lineage = {"method": "auto_accept" if machine else "x", "machine": machine}
            item.save(update_fields=["final_labels", "final_lineage"])
            after_final_labels_changed(project=project, item_ids=[item.pk])

    # when every topic has 2 labels, but politics' second one is auto-accepted
    for topic in TOPICS:
        label(items[topic][0], machine=False)
    for topic in TOPICS:
        label(items[topic][1], machine=topic == "politics")
    # then nothing is trained yet; a human second politics label starts training
    assert sent == []
    label(items["politics"][2], machine=False)
    assert len(sent) == 1


@pytest.mark.django_db
def test_no_cold_start_training_when_retraining_is_by_hand_only(
    sent, django_capture_on_commit_callbacks
):
    project = topic_project(per_topic=5)
    settings_row = model_settings_get(project=project)
    settings_row.retrain_every = 0
    settings_row.min_labels = 3
    settings_row.save()
    items = list(Item.objects.filter(project=project))
    with django_capture_on_commit_callbacks(execute=True):
        for item in items:
            item.final_labels = [item.metadata["topic"]]
        Item.objects.bulk_update(items, ["final_labels"])
        after_final_labels_changed(project=project, item_ids=[i.pk for i in items])
    assert sent == []


@pytest.mark.django_db
def test_a_request_while_training_is_folded_into_a_retrain(
    sent, django_capture_on_commit_callbacks
):
    project = topic_project(per_topic=2)
    with django_capture_on_commit_callbacks(execute=True):
        first = training_request(project=project, reason="now")
    # when a second request comes while the first holds the lock
    with django_capture_on_commit_callbacks(execute=True):
        second = training_request(project=project, reason="now")
    # then no second job exists, but a retrain is pending
    assert first is not None
    assert second is None
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN).count() == 1
    assert ModelSettings.objects.get(project=project).retrain_pending
    # when the first finishes and releases the lock, the pending retrain starts
    Job.objects.filter(pk=first.pk).update(status=Job.Status.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        training_lock_release(project_id=project.pk, job_id=first.pk)
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN).count() == 2
    assert sent[-1] != first.pk
    assert not ModelSettings.objects.get(project=project).retrain_pending


@pytest.mark.django_db
def test_a_dead_holder_does_not_block_training_forever(sent, django_capture_on_commit_callbacks):
    project = topic_project(per_topic=2)
    with django_capture_on_commit_callbacks(execute=True):
        first = training_request(project=project, reason="now")
    Job.objects.filter(pk=first.pk).update(status=Job.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        second = training_request(project=project, reason="again")
    assert second is not None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_triggers_start_one_training(sent):
    # given a project and its settings row
    project = topic_project(per_topic=2)
    model_settings_get(project=project)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def trigger():
        try:
            barrier.wait()
            results.append(training_request(project=project, reason="race"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    # when two triggers race, each in its own connection
    for _ in range(20):
        barrier.reset()
        results.clear()
        threads = [threading.Thread(target=trigger) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        # then exactly one started a job; the other left a pending retrain
        started = [job for job in results if job is not None]
        assert len(started) == 1
        assert ModelSettings.objects.get(project=project).training_job_id == started[0].pk
        assert ModelSettings.objects.get(project=project).retrain_pending
        # release for the next round (without starting the pending retrain)
        Job.objects.filter(pk=started[0].pk).update(status=Job.Status.SUCCEEDED)
        ModelSettings.objects.filter(project=project).update(
            training_job=None, retrain_pending=False
        )
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN).count() == 20
    assert Item.objects.filter(project=project).count() == 6


@pytest.mark.django_db
def test_labels_while_a_live_job_trains_with_a_retrain_pending_start_nothing(
    sent, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    # given a running training job holding the lock, a retrain already pending, and a counter
    # past the threshold
    from models_app.services.training import final_labels_counted

    project = topic_project(per_topic=2)
    with django_capture_on_commit_callbacks(execute=True):
        running = training_request(project=project, reason="now")
    ModelSettings.objects.filter(project=project).update(
        retrain_pending=True, retrain_every=2, labels_since_training=5
    )

    # when more final labels arrive, only the counter moves: one statement, no new job
    with django_assert_max_num_queries(1):
        assert final_labels_counted(project=project, count=1) is None
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN).count() == 1
    assert ModelSettings.objects.get(project=project).labels_since_training == 6

    # when the running job dies silently (finished without releasing), the next label frees
    # the lock and starts the retrain
    Job.objects.filter(pk=running.pk).update(status=Job.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        started = final_labels_counted(project=project, count=1)
    assert started is not None
    assert started.pk != running.pk
    assert sent[-1] == started.pk
