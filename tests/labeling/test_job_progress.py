"""What a job's progress says, on the pages and in GET /api/jobs/{id}/: a pending job waits for
a worker, a job without a total has an indeterminate bar (never a full bar over "0"), a running
job with a total reports items per second and the time left, and a successful import with
skipped rows is reported truthfully (rows read, items created, duplicates merged, skipped)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import Job
from labeling.services.imports import import_job_create, import_run
from labeling.services.jobs import job_speed
from tests.factories import ItemFactory, JobFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def test_speed_is_items_per_second_since_the_start_and_the_time_left_at_that_pace():
    speed = job_speed(
        status="running", done=300, total=1200, started_at=NOW - timedelta(seconds=60), now=NOW
    )
    assert speed.items_per_second == 5.0
    assert speed.eta_seconds == 180


@pytest.mark.parametrize(
    ("status", "done", "total", "started"),
    [
        ("pending", 0, 10, None),  # no worker yet
        ("running", 0, 10, NOW - timedelta(seconds=5)),  # nothing done yet
        ("succeeded", 10, 10, NOW - timedelta(seconds=5)),  # finished
    ],
)
def test_no_speed_where_none_can_be_known(status, done, total, started):
    speed = job_speed(status=status, done=done, total=total, started_at=started, now=NOW)
    assert speed == (None, None)


def test_a_job_without_a_total_has_a_rate_but_no_time_left():
    speed = job_speed(
        status="running", done=50, total=None, started_at=NOW - timedelta(seconds=10), now=NOW
    )
    assert speed == (5.0, None)


def test_the_job_api_reports_rate_and_eta_of_a_running_job(project, manager):
    job = JobFactory(
        project=project,
        kind=Job.Kind.EMBED,
        status=Job.Status.RUNNING,
        progress_done=100,
        progress_total=400,
        started_at=timezone.now() - timedelta(seconds=50),
    )
    api = APIClient()
    api.force_authenticate(manager)

    body = api.get(f"/api/jobs/{job.pk}/").json()

    assert body["items_per_second"] == pytest.approx(2.0, rel=0.1)
    assert body["eta_seconds"] == pytest.approx(150, rel=0.1)
    pending = JobFactory(project=project, kind=Job.Kind.RANK, status=Job.Status.PENDING)
    body = api.get(f"/api/jobs/{pending.pk}/").json()
    assert (body["items_per_second"], body["eta_seconds"]) == (None, None)


def _jobs_table(project, user):
    client = Client()
    client.force_login(user)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    start = page.index('<table class="jobs"')
    return page[start : page.index("</table>", start)]


def _row(table, job):
    start = table.index(f'data-job-id="{job.pk}"')
    return table[start : table.index("</tr>", start)]


def test_the_jobs_table_says_waiting_and_never_draws_a_full_bar_without_a_total(project, manager):
    pending = JobFactory(project=project, kind=Job.Kind.RANK, status=Job.Status.PENDING)
    rank_running = JobFactory(
        project=project,
        kind=Job.Kind.RANK,
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        message="Reading vectors",
        params={"reason": "embedded"},
    )
    rank_done = JobFactory(
        project=project,
        kind=Job.Kind.RANK,
        status=Job.Status.SUCCEEDED,
        message="Cold start: 12 items ranked",
    )
    embed = JobFactory(
        project=project,
        kind=Job.Kind.EMBED,
        status=Job.Status.RUNNING,
        progress_done=1,
        progress_total=4,
        started_at=timezone.now(),
    )

    table = _jobs_table(project, manager)

    assert "waiting for a worker" in _row(table, pending)
    assert "Running 0/4" not in table
    running = _row(table, rank_running)
    assert "<progress aria-label" in running  # no value: indeterminate
    assert "Reading vectors" in running
    assert "(embedded)" in running  # why this re-rank was queued
    done = _row(table, rank_done)
    assert 'value="100"' not in done
    assert "hidden></progress>" in done
    assert '<span data-field="counts"></span>' in done  # not "0"
    assert 'max="4" value="1"' in _row(table, embed)
    assert "1 / 4 (25%)" in _row(table, embed)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _import(project, tmp_path: Path, content: str) -> Job:
    path = tmp_path / "rows.csv"
    path.write_text(content, encoding="utf-8")
    job = import_job_create(
        project=project, path=path, enqueue=False, skip_invalid=True, mapping={"label": "label"}
    )
    return import_run(job_id=job.pk)


def test_a_successful_import_with_skipped_rows_reports_what_became_of_every_row(
    project, manager, media, tmp_path
):
    # Given an item that already has id "old", and a file of 6 rows: 3 new, one with that
    # id, one with the same text as an earlier row, one with an unknown label
    ItemFactory(project=project, external_id="old", text="Already here")
    job = _import(
        project,
        tmp_path,
        "id,text,label\n"
        "1,First,pos\n2,Second,neg\nold,Again,pos\n3,First,pos\n4,Bad label,maybe\n5,Third,pos\n",
    )

    # Then the job succeeded and says so, with rows read, items created, duplicates merged
    # and rows skipped with their reasons
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["rows_read"] == 6
    assert job.result["items_created"] == 3
    assert job.result["duplicates_merged"] == 1
    assert job.result["rows_skipped"] == 2
    assert job.result["skip_reasons"] == {
        "id already in the project": 1,
        "invalid (see the report)": 1,
    }
    assert job.message == (
        "6 rows read: 3 items created; 1 duplicate merged (same text as an item or an earlier "
        "row); 1 row skipped (id already in the project); 1 invalid row skipped."
    )
    # and the jobs table's report under it is titled as a success, not "Why ... failed"
    table = _jobs_table(project, manager)
    assert f"Job #{job.pk} succeeded with 2 rows skipped" in table
    assert "failed" not in table
    assert "6 rows read: 3 items created, 1 duplicate merged" in table
    assert "unknown label" in table
