"""End to end: `demo_setup` queues the BBC News import and a real Celery worker process, talking
to the same database and broker, finishes the Job. This is what `make run` does on first start."""

import json
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from labeling.management.commands.demo_setup import (
    LABELS,
    PROJECT_NAME,
    bbc_corpus_dir,
    bbc_jsonl_write,
)
from labeling.models import Item, Job, Project
from tests.e2e.worker import celery_worker

# A generous bound so a broken worker fails the test instead of hanging CI; not a speed check.
WAIT_SECONDS = 600

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs DATABASE_URL=postgres://...: the worker must open the test database, "
        "and the SQLite test database lives in this process's memory",
    ),
]


@pytest.fixture
def worker(tmp_path):
    """A real `celery worker` process on the test database, the same broker and MEDIA_ROOT."""
    queues = [
        settings.QUEUE_DEFAULT,
        settings.QUEUE_IMPORT,
        settings.QUEUE_TRAIN,
        settings.QUEUE_LLM,
        settings.QUEUE_EMBED,
    ]
    log_path = tmp_path / "worker.log"
    with celery_worker(log_path, queues=queues, name="e2e") as process:
        yield process, log_path


@pytest.mark.django_db(transaction=True)
def test_worker_finishes_the_demo_import_job(worker, settings, tmp_path):
    process, log_path = worker
    settings.DEBUG = True  # demo_setup's built-in passwords are for DEBUG only

    # given the demo set up, which queues the import after its transaction commits
    call_command("demo_setup")
    project = Project.objects.get(name=PROJECT_NAME)
    job = Job.objects.get(project=project, kind=Job.Kind.IMPORT)
    expected = tmp_path / "expected.jsonl"
    bbc_jsonl_write(data_dir=bbc_corpus_dir(), target=expected)
    rows = [json.loads(line) for line in expected.read_text(encoding="utf-8").splitlines()]

    # when the worker process picks the job up and runs it
    deadline = time.monotonic() + WAIT_SECONDS
    while not job.is_finished and time.monotonic() < deadline:
        assert process.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")
        time.sleep(1)
        job.refresh_from_db()

    # then the job succeeded, in the worker, and every distinct article became an item
    log = log_path.read_text(errors="replace")
    assert job.status == Job.Status.SUCCEEDED, f"{job.status}: {job.error}\n{log}"
    assert job.attempts >= 1
    assert job.started_at is not None
    first_of_each_text = {}
    for row in rows:
        first_of_each_text.setdefault(row["text"], row["id"])
    items = Item.objects.filter(project=project)
    assert set(items.values_list("external_id", flat=True)) == set(first_of_each_text.values())
    assert not items.exclude(import_job=job).exists()
    assert job.result["created"] == len(first_of_each_text)
    assert job.result["skipped_duplicate_content"] == len(rows) - len(first_of_each_text)
    item = items.get(external_id=next(iter(first_of_each_text.values())))
    assert item.metadata == {}
    # nothing an annotator sees beside the text names the class
    for external_id, metadata in items.values_list("external_id", "metadata"):
        assert not any(label in external_id.lower() for label in LABELS), external_id
        assert metadata == {}
    assert item.final_labels is None

    # then, within the first chunk of the embedding job the import queued, the worker ranks the
    # queue on what is embedded and gives every embedded article a zero-shot suggestion from
    # the label descriptions: annotator1's first item is a ranked one, with a suggestion
    from labeling.api.selectors import item_suggestions
    from labeling.management.commands.demo_setup import bbc_articles
    from labeling.models import Prediction
    from labeling.services.queue import queue_next_item

    deadline = time.monotonic() + WAIT_SECONDS
    ranked = None
    while ranked is None and time.monotonic() < deadline:
        assert process.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")
        failed = Job.objects.filter(project=project, status=Job.Status.FAILED).first()
        assert failed is None, f"{failed.kind} failed: {failed.error}"
        ranked = Job.objects.filter(
            project=project, kind=Job.Kind.RANK, status=Job.Status.SUCCEEDED
        ).first()
        time.sleep(1)
    assert ranked is not None, log_path.read_text(errors="replace")
    assert ranked.result["ranking"] == "zero_shot", ranked.result
    annotator = project.memberships.get(user__username="annotator1").user
    served = queue_next_item(project=project, user=annotator).item
    assert served.priority >= 10  # written by a ranking, not the import's random order
    (shown, *_) = item_suggestions(item=served)
    assert shown.source_kind == "zero_shot"
    truth = {external_id: label for external_id, _, label in bbc_articles(bbc_corpus_dir())}
    predictions = Prediction.objects.filter(project=project, source_kind="zero_shot")
    assert predictions.count() >= 20

    # and once every article is embedded, every one has a zero-shot suggestion, mostly right
    # (judged on the whole pool: the first chunk's few dozen are too few to judge 0.9 on)
    total = items.count()
    deadline = time.monotonic() + WAIT_SECONDS
    while predictions.values("item").distinct().count() < total:
        assert time.monotonic() < deadline, log_path.read_text(errors="replace")
        assert process.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")
        failed = Job.objects.filter(project=project, status=Job.Status.FAILED).first()
        assert failed is None, f"{failed.kind} failed: {failed.error}"
        time.sleep(1)
    time.sleep(1)  # the ranking job that wrote the last ones may still be replacing others
    pairs = list(predictions.values_list("item__external_id", "labels"))
    right = sum(labels == [truth[external_id]] for external_id, labels in pairs)
    assert right / len(pairs) > 0.9, (right, len(pairs))
