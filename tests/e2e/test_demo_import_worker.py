"""End to end: `demo_setup` queues the BBC News import and a real Celery worker process, talking
to the same database and broker, finishes the Job. This is what `make run` does on first start."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from labeling.management.commands.demo_setup import PROJECT_NAME, bbc_corpus_dir, bbc_jsonl_write
from labeling.models import Item, Job, Project

ROOT = Path(__file__).resolve().parents[2]
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


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    """A real `celery worker` process on the test database, the same broker and MEDIA_ROOT."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _test_database_url(),
        "FLYWHEEL_DATA_DIR": str(settings.DATA_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    queues = ",".join(
        dict.fromkeys(
            [
                settings.QUEUE_DEFAULT,
                settings.QUEUE_IMPORT,
                settings.QUEUE_TRAIN,
                settings.QUEUE_LLM,
                settings.QUEUE_EMBED,
            ]
        )
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "-Q",
                queues,
                "-n",
                f"e2e-{os.getpid()}@%h",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    assert item.metadata["source_class"] == item.external_id.split("/")[0]
    assert item.final_labels is None
