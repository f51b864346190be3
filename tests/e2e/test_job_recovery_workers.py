"""Jobs never strand, with real workers: a job of every kind is claimed by a worker that stops
in the middle of it (`tests/e2e/stall_jobs.py`); while that worker lives, its heartbeats keep
the jobs its own, even against a second worker whose recovery sweep runs every second; once it
is killed with SIGKILL, the second worker's sweep brings every job back and each one finishes,
from its last committed step, with its work done once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from active_learning.services.ranking import ranking_schedule
from bench.llm_server import LLMServer
from labeling.models import Item, Job, Membership
from labeling.services.imports import import_job_create
from models_app.models import ModelVersion
from models_app.services.embeddings import embeddings_schedule
from models_app.services.training import training_request
from quality.services.aggregation import aggregation_request
from quality.services.crowd_import import crowd_import_job_create
from tests.e2e.worker import ROOT, celery_worker, test_database_url
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.label_model import label_model_job_create, label_model_run
from weak_supervision.services.lfs import lf_create
from weak_supervision.services.llm import llm_job_create
from weak_supervision.services.settings import ws_settings_update

WAIT_SECONDS = 300  # a bound so a broken worker fails instead of hanging; not a speed check
STALE = 4

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs DATABASE_URL=postgres://...: the workers must open the test database",
    ),
]

WORDS = ["win cash now", "prize waiting", "see you at lunch", "meeting moved to five"]


def _items(project, n: int, *, labelled: int = 0) -> None:
    rows = []
    for i in range(n):
        text = f"{WORDS[i % 4]} number {i}"
        label = ("spam" if i % 4 < 2 else "ham") if i < labelled else None
        rows.append(
            Item(
                project=project,
                external_id=f"x{i}",
                text=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                final_labels=[label] if label else None,
                final_confidence=1.0 if label else None,
                status=Item.Status.DONE if label else Item.Status.OPEN,
                annotation_count=1 if label else 0,
            )
        )
    Item.objects.bulk_create(rows)


def _project(n: int = 40, *, labelled: int = 0):
    project = ProjectFactory(labels=["spam", "ham"])
    _items(project, n, labelled=labelled)
    return project


def _keyword_lf(project):
    return lf_create(
        project=project,
        name="cash",
        kind="keyword",
        config={"keywords": ["cash", "prize"], "label": "spam"},
    )


def _jobs_of_every_kind(tmp_path: Path, llm_url: str, settings) -> dict[str, Job]:
    jobs: dict[str, Job] = {}

    project = _project(0)
    csv = tmp_path / "items.csv"
    csv.write_text("text\n" + "".join(f"imported text {i}\n" for i in range(50)))
    jobs["import"] = import_job_create(project=project, path=csv)

    project = _project(4)
    manager = UserFactory()
    MembershipFactory(project=project, user=manager, role=Membership.Role.MANAGER)
    upload = SimpleUploadedFile("c.csv", b"item,worker,label\nx0,w1,spam\nx0,w2,spam\n")
    jobs["crowd import"] = crowd_import_job_create(
        project=project, user=manager, uploaded_file=upload, options={}
    )

    jobs["embed"] = embeddings_schedule(project=_project(60), then_rank=False)
    jobs["train"] = training_request(project=_project(60, labelled=40), reason="e2e")
    jobs["rank"] = ranking_schedule(project=_project(60), reason="e2e")

    project = _project(40)
    _keyword_lf(project)
    jobs["labeling functions"] = apply_job_create(project=project)

    project = _project(40)
    _keyword_lf(project)
    apply_run(job_id=apply_job_create(project=project).pk)  # inline: votes to model
    jobs["label model"] = label_model_job_create(project=project)

    project = _project(40, labelled=8)
    _keyword_lf(project)
    apply_run(job_id=apply_job_create(project=project).pk)
    label_model_run(job_id=label_model_job_create(project=project).pk)
    ws_settings_update(project=project, cascade_enabled=True)
    from weak_supervision.services.cascade import cascade_job_create

    jobs["cascade"] = cascade_job_create(project=project)

    project = _project(10)
    settings.LLM_ALLOWED_BASE_URLS = [llm_url]
    ws_settings_update(project=project, llm_enabled=True, llm_base_url=llm_url, llm_model="sim-1")
    jobs["llm"] = llm_job_create(project=project)

    project = _project(5, labelled=5)
    jobs["aggregate"] = aggregation_request(project=project, delay=0, force=True)
    return jobs


def _wait(condition, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(
        f"timed out waiting for {what}\n"
        + "\n".join(p.read_text(errors="replace")[-20000:] for p in logs if p.exists())
    )


def _statuses(jobs: dict[str, Job]) -> dict[str, str]:
    by_id = dict(
        Job.objects.filter(pk__in=[j.pk for j in jobs.values()]).values_list("pk", "status")
    )
    return {name: by_id[job.pk] for name, job in jobs.items()}


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_middle_of_every_kind_of_job_strands_none(tmp_path, settings):
    settings.EMBEDDING_MODEL = "hashing"
    queues = [settings.QUEUE_DEFAULT, settings.QUEUE_IMPORT, settings.QUEUE_TRAIN]
    queues += [settings.QUEUE_EMBED, settings.QUEUE_LLM]
    texts = {f"{WORDS[i % 4]} number {i}": "spam" if i % 4 < 2 else "ham" for i in range(40)}
    with LLMServer(truth=texts) as llm:
        env = {
            "EMBEDDING_MODEL": "hashing",
            "JOB_HEARTBEAT_SECONDS": "1",
            "JOB_STALE_SECONDS": str(STALE),
            "JOB_RECOVERY_SWEEP_SECONDS": "1",
            "EMBEDDING_RESUME_SWEEP_SECONDS": "1",
            "EMBEDDING_CHUNK_STALE_SECONDS": str(STALE),
            "LLM_ALLOWED_BASE_URLS": llm.base_url,
        }
        stall = {**env, "FLYWHEEL_TEST_STALL_KINDS": ",".join(k.value for k in Job.Kind)}
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        with celery_worker(
            logs[0], queues=queues, name="stalls", env=stall, pool="threads", concurrency=16
        ) as first:
            jobs = _jobs_of_every_kind(tmp_path, llm.base_url, settings)
            assert all(job is not None for job in jobs.values()), jobs
            _wait(
                lambda: set(_statuses(jobs).values()) == {"running"},
                "the first worker to be in the middle of every job",
                logs,
            )
            tokens = dict(Job.objects.filter(pk__in=[j.pk for j in jobs.values()])
                          .values_list("pk", "run_token"))  # fmt: skip
            with celery_worker(
                logs[1], queues=queues, name="recovers", env=env, beat=True
            ) as second:
                # Alive, the first worker keeps its jobs: the second one's sweep, every
                # second, finds no silent job for several stale periods.
                time.sleep(3 * STALE)
                assert set(_statuses(jobs).values()) == {"running"}
                held = dict(Job.objects.filter(pk__in=tokens).values_list("pk", "run_token"))
                assert held == tokens
                assert not Job.objects.filter(pk__in=tokens, restarts__gt=0).exists()

                first.kill()  # SIGKILL: no chance to clean up
                first.wait()
                killed_at = timezone.now()
                _wait(
                    lambda: set(_statuses(jobs).values()) <= {"succeeded", "failed"},
                    "every job to finish after the kill",
                    logs,
                )
                assert second.poll() is None

    statuses = _statuses(jobs)
    failed = {
        name: Job.objects.get(pk=jobs[name].pk).error
        for name, status in statuses.items()
        if status != "succeeded"
    }
    assert failed == {}, failed
    for job in Job.objects.filter(pk__in=tokens):
        assert job.finished_at > killed_at
        if job.kind != Job.Kind.EMBED:  # embedding lanes resume through their own sweep
            assert job.restarts == 1, (job.kind, job.restarts)
    # The work, done once: every imported row, every crowd answer, a trained model.
    assert (
        Item.objects.filter(project=jobs["import"].project, text__startswith="imported").count()
        == 50
    )
    assert ModelVersion.objects.filter(project=jobs["train"].project).exists()
    assert Job.objects.get(pk=jobs["crowd import"].pk).result["created"] == 2


@pytest.mark.django_db(transaction=True)
def test_in_embedded_mode_a_restarted_worker_resumes_what_the_dead_one_had(tmp_path, settings):
    """The filesystem transport deletes a message once a worker takes it, so nothing is ever
    delivered again: the next worker to start queues the unfinished job itself (no beat)."""
    embedded = {
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "FLYWHEEL_DATA_DIR": str(tmp_path / "data"),
        "JOB_HEARTBEAT_SECONDS": "1",
    }
    project = _project(0)
    csv = tmp_path / "items.csv"
    csv.write_text("text\n" + "".join(f"embedded text {i}\n" for i in range(30)))
    job = import_job_create(project=project, path=csv, enqueue=False)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    queues = [settings.QUEUE_IMPORT]
    stall = {**embedded, "FLYWHEEL_TEST_STALL_KINDS": Job.Kind.IMPORT.value}
    with celery_worker(logs[0], queues=queues, name="embedded-1", env=stall) as first:
        subprocess.run(
            [sys.executable, "manage.py", "resume_jobs", "--job", str(job.pk)],
            cwd=ROOT,
            env={
                **os.environ,
                **embedded,
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": test_database_url(),
            },
            check=True,
            capture_output=True,
        )
        _wait(lambda: _statuses({"j": job})["j"] == "running", "the first worker", logs)
        first.kill()
        first.wait()
    time.sleep(3)  # two heartbeats: no live worker holds it
    with celery_worker(logs[1], queues=queues, name="embedded-2", env=embedded):
        _wait(lambda: _statuses({"j": job})["j"] == "succeeded", "the resumed import", logs)
    assert Item.objects.filter(project=project).count() == 30
