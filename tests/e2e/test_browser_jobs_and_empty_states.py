"""In a real headless Chromium: job progress that tells the truth (waiting for a worker, an
indeterminate bar without a total, items/s and time left, a successful import with skipped
rows titled as a success), and pages that say "no data yet" instead of drawing empty charts.
Screenshots go to tests.browser.SCREENSHOTS."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Job
from labeling.services.imports import import_run
from quality.services.aggregation import project_aggregate
from tests.browser import BROWSER_MARKS, SCREENSHOTS, expect
from tests.browser import login as _login
from tests.factories import ItemFactory, JobFactory
from tests.quality.factories import answer, project_with_members
from weak_supervision import registry

pytestmark = BROWSER_MARKS

CSV = (
    "id,text,label\n"
    "1,First text,pos\n2,Second text,neg\n3,First text,pos\n4,Bad label,maybe\n5,Third text,pos\n"
)


@pytest.mark.django_db(transaction=True)
def test_an_import_that_skips_rows_waits_for_a_worker_then_reports_a_success(
    live_server, page, tmp_path
):
    project, _, _, manager = project_with_members(k=1, annotators=1, labels=("pos", "neg"))
    upload = tmp_path / "rows.csv"
    upload.write_text(CSV, encoding="utf-8")

    # When the manager uploads a file with a duplicate text and an invalid row
    _login(page, live_server.url, manager.username, f"/projects/{project.pk}/import/")
    page.set_input_files("#import-file", str(upload))
    page.fill("#label-field", "label")
    page.check("#skip-invalid")
    page.click("#import-submit")

    # Then, before any worker has it, the job says it is waiting (not "Running 0/5")
    expect(page.locator("#job-text")).to_have_text("waiting for a worker")
    expect(page.locator("#import-status")).to_contain_text("waiting for a worker")
    job = Job.objects.get(project=project, kind=Job.Kind.IMPORT)

    # When a worker runs it
    import_run(job_id=job.pk)

    # Then the page reports a success with what became of every row
    expect(page.locator("#import-status")).to_have_text("Import finished with 1 row skipped.")
    report = page.locator("#job-report")
    expect(report.locator("summary")).to_have_text(f"Job #{job.pk} succeeded with 1 row skipped")
    expect(report).not_to_contain_text("failed")
    expect(report).to_contain_text("5 rows read: 3 items created, 1 duplicate merged")
    expect(report).to_contain_text("unknown label 'maybe'")
    outcome = page.locator("#import-outcome")
    expect(outcome).to_contain_text("Rows read5")
    expect(outcome).to_contain_text("Items created3")
    expect(outcome).to_contain_text("Duplicates merged1")
    expect(outcome).to_contain_text("Rows skipped1")
    expect(page.locator("#job-text")).to_have_text("5 / 5")
    page.screenshot(path=str(SCREENSHOTS / "import-skipped-rows.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_the_jobs_table_shows_waiting_indeterminate_and_speed(live_server, page):
    project, _, _, manager = project_with_members(k=1, annotators=1)
    pending = JobFactory(project=project, kind=Job.Kind.TRAIN, status=Job.Status.PENDING)
    rank = JobFactory(
        project=project,
        kind=Job.Kind.RANK,
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        message="Reading vectors",
        params={"reason": "embedded"},
    )
    ranked = JobFactory(
        project=project,
        kind=Job.Kind.RANK,
        status=Job.Status.SUCCEEDED,
        message="Cold start (no active model): 40 items ranked by representative sampling",
        params={"reason": "cold start"},
    )
    embed = JobFactory(
        project=project,
        kind=Job.Kind.EMBED,
        status=Job.Status.RUNNING,
        progress_done=100,
        progress_total=400,
        started_at=timezone.now() - timedelta(seconds=50),
    )

    _login(page, live_server.url, manager.username, f"/projects/{project.pk}/")

    def row(job):
        return page.locator(f'tr[data-job-id="{job.pk}"]')

    expect(row(pending).locator('[data-field="counts"]')).to_have_text("waiting for a worker")
    expect(row(rank)).to_contain_text("Reading vectors")
    assert row(rank).locator("progress").evaluate("el => el.hasAttribute('value')") is False
    expect(row(ranked).locator("progress")).to_be_hidden()
    expect(row(ranked).locator('[data-field="counts"]')).to_have_text("")
    # the running embedding job: items per second and the time left (from the API)
    counts = row(embed).locator('[data-field="counts"]')
    expect(counts).to_contain_text("100 / 400 (25%)")
    expect(counts).to_contain_text("items/s")
    expect(counts).to_contain_text("left")
    # each job once
    assert page.locator(f'tr[data-job-id="{rank.pk}"]').count() == 1
    page.screenshot(path=str(SCREENSHOTS / "jobs-progress.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_a_manager_restarts_a_failed_or_stuck_job_from_the_jobs_table(
    live_server, page, monkeypatch
):
    from celery.app.task import Task

    sent = []
    monkeypatch.setattr(Task, "apply_async", lambda self, args=None, **kw: sent.append(args[0]))
    project, _, _, manager = project_with_members(k=1, annotators=1)
    long_ago = timezone.now() - timedelta(hours=1)
    done = JobFactory(project=project, kind=Job.Kind.RANK, status=Job.Status.SUCCEEDED)
    live = JobFactory(
        project=project, kind=Job.Kind.TRAIN, status=Job.Status.RUNNING,
        started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    stuck = JobFactory(
        project=project, kind=Job.Kind.LABEL_MODEL, status=Job.Status.RUNNING,
        started_at=long_ago, heartbeat_at=long_ago,
    )  # fmt: skip
    failed = JobFactory(
        project=project, kind=Job.Kind.RANK, status=Job.Status.FAILED, error="Boom: no vectors"
    )
    _login(page, live_server.url, manager.username, f"/projects/{project.pk}/")

    def restart(job):
        return page.locator(f'tr[data-job-id="{job.pk}"] button.job-restart')

    expect(restart(done)).to_be_hidden()
    expect(restart(live)).to_be_hidden()
    expect(restart(stuck)).to_be_visible()
    expect(restart(failed)).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "jobs-restart.png"), full_page=True)

    restart(failed).click()
    row = page.locator(f'tr[data-job-id="{failed.pk}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("Pending")
    expect(row).to_contain_text(f"Restarted by {manager.username}")
    expect(restart(failed)).to_be_hidden()
    failed.refresh_from_db()
    assert (failed.status, failed.error) == (Job.Status.PENDING, "")
    assert sent == [failed.pk]


@pytest.mark.django_db(transaction=True)
def test_quality_and_prelabel_pages_say_no_data_yet_instead_of_empty_charts(live_server, page):
    # Given a k = 1 project where every item has one answer, and no gold
    project, (a,), _, manager = project_with_members(k=1, annotators=1)
    for n in range(3):
        answer(project, ItemFactory(project=project, text=f"Text {n}"), a, "pos")
    project_aggregate(project=project)

    _login(page, live_server.url, manager.username, f"/projects/{project.pk}/quality/")
    expect(page.locator("[data-testid=agreement-hint]")).to_contain_text(
        "Agreement needs at least two annotators per item: set k"
    )
    expect(page.locator("[data-testid=consensus-chart-empty]")).to_be_visible()
    expect(page.locator("[data-testid=gold-chart-empty]")).to_be_visible()
    assert page.locator("canvas").count() == 0
    expect(page.locator("main")).not_to_contain_text("exactly 0 answers")
    page.screenshot(path=str(SCREENSHOTS / "quality-no-data.png"), full_page=True)

    # and a project without items on the pre-label page
    empty, _, _, boss = project_with_members(k=1, annotators=1)
    page.context.clear_cookies()
    _login(page, live_server.url, boss.username, f"/projects/{empty.pk}/prelabels/")
    expect(page.locator("#stage-chart-empty")).to_have_text(
        "No data yet: the chart appears once the project has items."
    )
    assert page.locator("#stage-chart").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "prelabels-no-data.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_trying_a_python_function_that_raises_shows_the_error(live_server, page):
    @registry.labeling_function("browser_raises")
    def browser_raises(text):
        raise ValueError("no model loaded")

    try:
        project, _, _, manager = project_with_members(k=1, annotators=1)
        for n in range(4):
            ItemFactory(project=project, text=f"Message {n}")
        _login(page, live_server.url, manager.username, f"/projects/{project.pk}/prelabels/")
        page.select_option("#lf-kind", "python")
        page.select_option("#lf-function", "browser_raises")
        page.click("button[data-action=try]")
        expect(page.locator("#lf-sample-summary")).to_contain_text("Votes on 0 of 4 items")
        error = page.locator("#lf-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("raised on 4 of 4 items")
        expect(error).to_contain_text("ValueError: no model loaded")
        page.screenshot(path=str(SCREENSHOTS / "lf-try-raises.png"), full_page=True)
    finally:
        registry.unregister("browser_raises")
