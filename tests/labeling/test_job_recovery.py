"""Jobs never strand: a run claims its job and heartbeats; a job whose worker went silent is
queued again by the recovery sweep (every kind, through one dispatcher) or by a manager's
restart; a broker outage is a 503 and a failed job that keeps its file. The real worker killed
mid-job is in tests/e2e/test_job_recovery_workers.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from celery.app.task import Task
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery_app import app as celery_app
from labeling.jobtasks import (
    BROKER_DOWN,
    JOB_KIND_RUNNERS,
    BrokerUnavailable,
    job_dispatch,
    job_send,
)
from labeling.models import Job, Membership
from labeling.services.jobs import (
    JobHeldElsewhere,
    job_heartbeat,
    job_run_context,
    job_start,
    jobs_recover,
)
from labeling.tasks import import_items_task
from models_app.models import ModelSettings
from tests.factories import JobFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role
OLD = timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch):
    """Every task message, as (task name, job id, queue), instead of a broker."""
    messages: list[tuple[str, int, str]] = []

    def apply_async(self, args=None, kwargs=None, **options):
        messages.append((self.name, args[0], options.get("queue")))

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return messages


def silent_job(project, *, kind=Job.Kind.IMPORT, status=Job.Status.RUNNING, params=None):
    job = JobFactory(project=project, kind=kind, status=status, params=params or {})
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - OLD, created_at=timezone.now() - OLD
    )
    job.refresh_from_db()
    return job


# ---- the claim -------------------------------------------------------------------------------


def test_a_live_run_keeps_its_job_and_a_silent_one_is_taken_over():
    job = JobFactory(project=ProjectFactory())
    with job_run_context(token="first"):
        assert job_start(job_id=job.pk).run_token == "first"
    with job_run_context(token="second"), pytest.raises(JobHeldElsewhere):
        job_start(job_id=job.pk)
    job.refresh_from_db()
    assert (job.run_token, job.attempts) == ("first", 1)  # the refused run changed nothing

    # The same message delivered again (a retry keeps its task id) carries on.
    with job_run_context(token="first"):
        assert job_start(job_id=job.pk).attempts == 2

    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - OLD)
    with job_run_context(token="second"):
        assert job_start(job_id=job.pk).run_token == "second"
    assert job_heartbeat(job_id=job.pk, token="first") is False
    assert job_heartbeat(job_id=job.pk, token="second") is True


def test_shared_jobs_and_inline_runs_claim_nothing():
    job = JobFactory(project=ProjectFactory())
    with job_run_context(token="lane-1"):
        job_start(job_id=job.pk, exclusive=False)
    with job_run_context(token="lane-2"):
        job_start(job_id=job.pk, exclusive=False)
    job_start(job_id=job.pk)  # a command or a benchmark running the job inline
    job.refresh_from_db()
    assert (job.run_token, job.attempts) == ("", 3)


# ---- the recovery sweep ----------------------------------------------------------------------


def test_the_sweep_queues_every_silent_job_of_every_kind_and_nothing_else(
    sent, tmp_path, django_capture_on_commit_callbacks
):
    project = ProjectFactory()
    silent = [
        silent_job(project, kind=Job.Kind.IMPORT),
        silent_job(project, kind=Job.Kind.IMPORT, params={"crowd": True, "path": "x.csv"}),
        silent_job(project, kind=Job.Kind.EMBED),
        silent_job(project, kind=Job.Kind.TRAIN),
        silent_job(project, kind=Job.Kind.SCORE),
        silent_job(project, kind=Job.Kind.RANK),
        silent_job(project, kind=Job.Kind.LABELING_FUNCTIONS),
        silent_job(project, kind=Job.Kind.LABEL_MODEL),
        silent_job(project, kind=Job.Kind.LLM),
        silent_job(project, kind=Job.Kind.OTHER, params={"action": "cascade"}),
        silent_job(project, kind=Job.Kind.AGGREGATE),
        silent_job(project, kind=Job.Kind.LLM, status=Job.Status.PENDING),  # message lost
    ]
    live = JobFactory(project=project, status=Job.Status.RUNNING, heartbeat_at=timezone.now())
    waiting = JobFactory(project=project, status=Job.Status.PENDING)  # just queued
    done = silent_job(project, status=Job.Status.SUCCEEDED)

    with django_capture_on_commit_callbacks(execute=True):
        recovered = jobs_recover(dispatch=job_dispatch)

    assert sorted(recovered) == sorted(j.pk for j in silent)
    tasks = {job_id: name for name, job_id, _ in sent}
    assert set(tasks) == {j.pk for j in silent}
    assert not {live.pk, waiting.pk, done.pk} & set(tasks)
    expected = {
        silent[0].pk: "labeling.import_items",
        silent[1].pk: "quality.crowd_import",
        silent[2].pk: "models_app.embed",
        silent[3].pk: "models_app.train",
        silent[4].pk: "active_learning.rank",
        silent[5].pk: "active_learning.rank",
        silent[6].pk: "weak_supervision.apply_lfs",
        silent[7].pk: "weak_supervision.label_model",
        silent[8].pk: "weak_supervision.llm",
        silent[9].pk: "weak_supervision.cascade",
        silent[10].pk: "quality.aggregate",
        silent[11].pk: "weak_supervision.llm",
    }
    assert tasks == expected
    for job in silent[:-1]:
        job.refresh_from_db()
        assert (job.restarts, job.status) == (1, Job.Status.RUNNING)
        assert job.message == "Resumed after its worker stopped responding"
    silent[-1].refresh_from_db()
    assert silent[-1].restarts == 0  # a lost message is not a dead worker
    # Brought back: not silent any more, so the next sweep leaves them to their new message.
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(dispatch=job_dispatch) == []
    # The recovered training job holds its project's training lock again.
    assert ModelSettings.objects.get(project=project).training_job_id == silent[3].pk


def test_every_job_kind_that_a_worker_runs_has_a_runner():
    assert set(JOB_KIND_RUNNERS) == set(Job.Kind) - {
        Job.Kind.EXPORT,  # streamed from the request, no job
        Job.Kind.SIMULATE,  # a management command, run inline
    }


def test_a_job_that_keeps_killing_its_worker_ends_failed(
    sent, settings, django_capture_on_commit_callbacks
):
    settings.JOB_MAX_RESTARTS = 2
    job = silent_job(ProjectFactory(), kind=Job.Kind.RANK)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            jobs_recover(dispatch=job_dispatch)
        Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - OLD)
    with django_capture_on_commit_callbacks(execute=True):
        jobs_recover(dispatch=job_dispatch)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "died or hit the time limit 3 times" in job.error
    assert len(sent) == 2


def test_resume_jobs_command_runs_the_sweep_for_every_kind(
    sent, capsys, django_capture_on_commit_callbacks
):
    project = ProjectFactory()
    train = silent_job(project, kind=Job.Kind.TRAIN)
    imp = JobFactory(project=project, status=Job.Status.RUNNING, heartbeat_at=timezone.now())
    done = JobFactory(project=project, status=Job.Status.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("resume_jobs")
        call_command("resume_jobs", "--job", str(imp.pk), "--job", str(done.pk))
    out = capsys.readouterr().out
    assert f"Queued train job #{train.pk} again." in out
    assert f"Queued import job #{imp.pk} again." in out
    assert f"Job #{done.pk} is succeeded; skipped." in out
    assert sorted(job_id for _, job_id, _ in sent) == sorted([train.pk, imp.pk])


# ---- a manager's restart ---------------------------------------------------------------------


@pytest.fixture
def team():
    project = ProjectFactory()
    users = {}
    for role in (Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER):
        users[role] = UserFactory()
        MembershipFactory(project=project, user=users[role], role=role)
    return project, users


def restart(user, job):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(reverse("api:job-restart", kwargs={"jid": job.pk}))


def test_a_manager_restarts_a_failed_or_stuck_job_and_no_one_else_may(
    team, sent, django_capture_on_commit_callbacks
):
    project, users = team
    failed = JobFactory(project=project, kind=Job.Kind.RANK, status=Job.Status.FAILED, error="x")
    stuck = silent_job(project, kind=Job.Kind.LABEL_MODEL)
    for role in (Role.ANNOTATOR, Role.REVIEWER):
        assert restart(users[role], failed).status_code == 403
    assert restart(UserFactory(), failed).status_code == 404
    assert sent == []

    with django_capture_on_commit_callbacks(execute=True):
        response = restart(users[Role.MANAGER], failed)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    failed.refresh_from_db()
    assert (failed.status, failed.error) == (Job.Status.PENDING, "")
    assert failed.message == f"Restarted by {users[Role.MANAGER].username}"

    with django_capture_on_commit_callbacks(execute=True):
        assert restart(users[Role.MANAGER], stuck).status_code == 202
    assert [name for name, _, _ in sent] == ["active_learning.rank", "weak_supervision.label_model"]


def test_a_live_or_finished_job_or_one_that_cannot_run_again_is_a_409(team, sent):
    project, users = team
    manager = users[Role.MANAGER]
    live = JobFactory(project=project, status=Job.Status.RUNNING, heartbeat_at=timezone.now())
    done = JobFactory(project=project, status=Job.Status.SUCCEEDED)
    gone = JobFactory(
        project=project, status=Job.Status.FAILED, params={"path": "/nonexistent/f.csv"}
    )
    other = JobFactory(project=project, kind=Job.Kind.TRAIN, status=Job.Status.RUNNING)
    ModelSettings.objects.update_or_create(project=project, defaults={"training_job": other})
    Job.objects.filter(pk=other.pk).update(heartbeat_at=timezone.now())
    train = JobFactory(project=project, kind=Job.Kind.TRAIN, status=Job.Status.FAILED)
    answers = {name: restart(manager, job) for name, job in
               [("live", live), ("done", done), ("gone", gone), ("train", train)]}  # fmt: skip
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 409)
    assert "worker reported" in answers["live"].json()["detail"]
    assert "no longer kept" in answers["gone"].json()["detail"]
    assert f"Training job #{other.pk} is running" in answers["train"].json()["detail"]
    assert sent == []
    for job in (live, done, gone, train):
        before = job.status
        job.refresh_from_db()
        assert job.status == before


def test_the_jobs_table_offers_restart_to_managers_only(team, client):
    project, users = team
    JobFactory(project=project, kind=Job.Kind.RANK, status=Job.Status.FAILED, error="boom")
    client.force_login(users[Role.MANAGER])
    page = client.get(reverse("labeling:project_detail", args=[project.pk])).content.decode()
    assert 'class="button small job-restart"' in page
    assert " hidden>Restart" not in page


# ---- the broker is down -----------------------------------------------------------------------


@pytest.fixture
def broker_down(monkeypatch):
    """Point the Celery app at a port where nothing listens (a broker that is down). Celery
    reads CELERY_BROKER_URL from the environment before its own setting, so both change."""
    conf = celery_app.conf
    saved = conf.broker_url, conf.broker_transport_options
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    conf.broker_url, conf.broker_transport_options = "redis://127.0.0.1:1/0", {}
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    yield
    monkeypatch.undo()
    conf.broker_url, conf.broker_transport_options = saved
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_sending_to_a_broker_that_is_down_fails_the_job(broker_down):
    job = JobFactory(project=ProjectFactory())
    with pytest.raises(BrokerUnavailable) as raised:
        job_send(import_items_task, job_id=job.pk, queue="default")
    assert raised.value.status_code == 503
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, BROKER_DOWN)


@pytest.mark.django_db(transaction=True)
def test_an_upload_while_the_broker_is_down_is_a_503_with_a_failed_job_that_keeps_its_file(
    broker_down, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    project = ProjectFactory()
    manager = UserFactory()
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    client = APIClient()
    client.force_authenticate(manager)
    upload = SimpleUploadedFile("items.csv", b"text\nhello\nworld\n", content_type="text/csv")

    response = client.post(
        reverse("api:import-create", kwargs={"pid": project.pk}), {"file": upload}
    )

    assert response.status_code == 503, response.content
    assert "task queue could not be reached" in response.json()["detail"]
    job = Job.objects.get(project=project)
    assert (job.status, job.error) == (Job.Status.FAILED, BROKER_DOWN)
    assert Path(job.params["path"]).is_file()  # kept: a manager restarts the job later


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        (Job.Kind.IMPORT, {}),
        (Job.Kind.IMPORT, {"crowd": True}),
        (Job.Kind.EMBED, {}),
        (Job.Kind.TRAIN, {}),
        (Job.Kind.RANK, {}),
        (Job.Kind.LABELING_FUNCTIONS, {}),
        (Job.Kind.LABEL_MODEL, {}),
        (Job.Kind.LLM, {}),
        (Job.Kind.OTHER, {"action": "cascade"}),
        (Job.Kind.AGGREGATE, {}),
    ],
)
def test_every_kind_fails_visibly_when_the_broker_is_down(broker_down, kind, params):
    job = JobFactory(project=ProjectFactory(), kind=kind, params=params)
    with pytest.raises(BrokerUnavailable):
        job_dispatch(job)
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, BROKER_DOWN)
