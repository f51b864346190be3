"""End to end with a real Celery worker process: embed at import, cold-start ranking, an
annotator labels through the queue, the N-th label triggers training in the worker, the version
is promoted, the pool is scored, and the queue order follows the model's uncertainty."""

import time

import pytest
from django.db import connection, transaction

from active_learning.services.ranking import al_settings_get
from labeling.models import Item, Job, Prediction
from labeling.services.annotations import annotation_submit
from labeling.services.queue import queue_next_item
from models_app.models import ModelVersion
from models_app.services.config import model_settings_get
from models_app.services.embeddings import embeddings_schedule
from tests.e2e.worker import celery_worker
from tests.factories import MembershipFactory, UserFactory
from tests.models_app.factories import topic_project

WAIT_SECONDS = 300  # a bound so a broken worker fails instead of hanging; not a speed check

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs DATABASE_URL=postgres://...: the worker must open the test database",
    ),
]


@pytest.fixture
def worker(tmp_path, settings):
    settings.EMBEDDING_MODEL = "hashing"
    queues = [settings.QUEUE_DEFAULT, settings.QUEUE_TRAIN, settings.QUEUE_EMBED]
    log_path = tmp_path / "worker.log"
    with celery_worker(
        log_path, queues=queues, name="e2e-al", env={"EMBEDDING_MODEL": "hashing"}
    ) as process:
        yield process, log_path


def _wait(process, log_path, condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")
        failed = Job.objects.filter(status=Job.Status.FAILED).first()
        assert failed is None, f"job failed: {failed.kind} {failed.error}"
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n" + log_path.read_text(errors="replace"))


def _queue_order(project):
    return list(
        Item.objects.filter(project=project, status="open")
        .order_by("-priority", "id")
        .values_list("id", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_labels_train_promote_and_rerank_in_a_worker(worker):
    process, log_path = worker
    # given an imported project (120 items, 3 topics) that retrains after 15 labels and can
    # leave cold start at 9
    project = topic_project(per_topic=40)
    model_settings = model_settings_get(project=project)
    model_settings.retrain_every = 15
    model_settings.min_labels = 9
    model_settings.save()
    al = al_settings_get(project=project)
    al.strategy = "least_confidence"
    al.diversity_batch = 0
    al.cold_start_clusters = 6
    al.save()
    annotator = UserFactory(username="e2e-al")
    MembershipFactory(project=project, user=annotator)

    # when the import completes and schedules embedding, the worker embeds and cold-start ranks
    with transaction.atomic():
        embeddings_schedule(project=project)
    _wait(
        process,
        log_path,
        lambda: Job.objects.filter(project=project, kind="rank", status="succeeded").exists(),
        "the cold-start ranking",
    )
    cold_order = _queue_order(project)

    # when the annotator labels through the queue until the worker has promoted a model
    labelled = 0
    while not ModelVersion.objects.filter(project=project, status="active").exists():
        assert labelled < 90, "no model promoted after 90 labels"
        for _ in range(15):
            assignment = queue_next_item(project=project, user=annotator)
            annotation_submit(
                project=project,
                user=annotator,
                item_id=assignment.item.pk,
                labels=[assignment.item.metadata["topic"]],
            )
            labelled += 1
        _wait(
            process,
            log_path,
            lambda: (
                not Job.objects.filter(
                    project=project, kind="train", status__in=["pending", "running"]
                ).exists()
                and Job.objects.filter(project=project, kind="train").exists()
            ),
            "the training job",
        )

    # (a training requested meanwhile may promote a newer version: wait until the worker is
    # idle and the active version's scoring job has finished)
    def settled() -> bool:
        busy = Job.objects.filter(
            project=project, kind__in=["train", "score", "rank"], status__in=["pending", "running"]
        ).exists()
        active = ModelVersion.objects.filter(project=project, status="active").first()
        return (
            not busy
            and active is not None
            and Job.objects.filter(
                project=project, kind="score", status="succeeded", result__version=active.number
            ).exists()
        )

    _wait(process, log_path, settled, "the scoring job of the active version")
    version = ModelVersion.objects.get(project=project, status="active")

    # then every unlabeled item has a prediction of the promoted version
    open_ids = set(_queue_order(project))
    predictions = Prediction.objects.filter(
        project=project, source_kind="model", source_version=str(version.number)
    )
    assert set(predictions.values_list("item_id", flat=True)) == open_ids
    # and the queue order changed, following the model: the next item served is the one the
    # model is least confident about
    assert _queue_order(project) != [i for i in cold_order if i in open_ids]
    other = UserFactory(username="e2e-al-2")
    MembershipFactory(project=project, user=other)
    served = queue_next_item(project=project, user=other)
    least = predictions.order_by("confidence", "item_id").first()
    assert served.item.pk == least.item_id
    # the first model is trained as soon as the labels can leave cold start (9 labels, 2 per
    # topic), not only after 15; before a held-out set exists it is cross-validated (or, with
    # a class of a single human label, promoted unevaluated)
    first_train = Job.objects.filter(project=project, kind="train").order_by("id").first()
    assert first_train.params["reason"] == "enough labels to leave cold start"
    if version.metrics.get("macro_f1") is not None:
        assert version.metrics["macro_f1"] > 0.5
    else:
        assert "not evaluated" in version.reason
