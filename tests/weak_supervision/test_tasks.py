"""The Celery tasks are thin and record failures on the job."""

import pytest

from labeling.models import Job
from tests.weak_supervision.conftest import make_items
from weak_supervision.models import WeakSupervisionSettings
from weak_supervision.services.apply import apply_job_create
from weak_supervision.services.common import ws_settings_for
from weak_supervision.services.lfs import lf_create
from weak_supervision.services.llm import llm_job_create
from weak_supervision.tasks import apply_lfs_task, enqueue, llm_task


def test_apply_task_runs_the_job(spam_project):
    make_items(spam_project, ["win cash", "hello"])
    lf_create(
        project=spam_project,
        name="w",
        kind="keyword",
        config={"label": "spam", "keywords": ["win"]},
    )
    job = apply_job_create(project=spam_project)
    apply_lfs_task.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.progress_done == 2


def test_a_task_that_fails_records_the_reason_on_the_job(spam_project, settings):
    settings.LLM_ALLOWED_BASE_URLS = ["http://127.0.0.1:9/v1"]
    ws = ws_settings_for(project=spam_project)
    ws.llm_enabled = True
    ws.llm_base_url = "http://127.0.0.1:9/v1"
    ws.llm_model = "m"
    ws.save()
    job = llm_job_create(project=spam_project)
    # the project switches the LLM off before a worker picks the job up
    ws.llm_enabled = False
    ws.save()
    llm_task.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "switched off" in job.error


def test_enqueue_refuses_jobs_of_other_apps(spam_project):
    job = Job.objects.create(project=spam_project, kind=Job.Kind.IMPORT)
    with pytest.raises(ValueError, match="not a pre-label job"):
        enqueue(job=job)


def test_the_worker_refuses_an_endpoint_the_operator_no_longer_allows(
    spam_project, settings, loopback_only
):
    # a value stored before the allow-list (or by hand) never reaches the network: the job
    # fails with the reason before any request is made
    settings.LLM_ALLOWED_BASE_URLS = ["http://127.0.0.1:9/v1"]
    ws = ws_settings_for(project=spam_project)
    ws.llm_enabled = True
    ws.llm_base_url = "http://127.0.0.1:9/v1"
    ws.llm_model = "m"
    ws.save()
    job = llm_job_create(project=spam_project)
    settings.LLM_ALLOWED_BASE_URLS = []
    WeakSupervisionSettings.objects.filter(pk=ws.pk).update(llm_base_url="http://127.0.0.1:5432")
    llm_task.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "not one the operator allows" in job.error
