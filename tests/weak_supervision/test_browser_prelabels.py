"""The pre-label dashboard and the labeling page's suggestions in a real headless Chromium:
a manager writes a keyword function, tries it on a sample, saves it; after the apply and label
model jobs the dashboard shows its statistics and an annotator sees the label model's
pre-label as a suggestion. Screenshots go to $WS_SCREENSHOTS (default: not saved)."""

import os
import re
from pathlib import Path

import pytest

from labeling.models import Job
from labeling.services.projects import project_create
from tests.browser import BROWSER_MARKS, expect
from tests.browser import login as _login
from tests.browser import new_page as _page
from tests.factories import UserFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision.models import LabelingFunction
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.label_model import label_model_job_create, label_model_run

SHOTS = os.environ.get("WS_SCREENSHOTS")

pytestmark = BROWSER_MARKS


def _shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_manager_builds_a_function_and_annotator_sees_the_pre_label(live_server, browser):
    manager = UserFactory(username="lead")
    annotator = UserFactory(username="worker")
    project = project_create(name="SMS", labels=["spam", "ham"], created_by=None)
    project.memberships.create(user=manager, role="manager")
    project.memberships.create(user=annotator, role="annotator")
    texts = [f"WIN cash now, offer {n}" for n in range(6)] + [
        f"see you at home {n}" for n in range(6)
    ]
    make_items(project, texts, human={0: "spam", 6: "ham"})
    errors: list[str] = []
    dashboard = f"/projects/{project.pk}/prelabels/"

    # when the manager writes a keyword function and tries it on a sample
    page = _page(browser, errors)
    _login(page, live_server.url, "lead", dashboard)
    page.fill("#lf-name", "cash words")
    page.select_option("#lf-kind", "keyword")
    page.select_option("#lf-label", "spam")
    page.fill("#lf-keywords", "cash, prize")
    page.click("button[data-action=try]")
    # then the sample shows its votes before anything is saved
    expect(page.locator("#lf-sample")).to_be_visible()
    expect(page.locator("#lf-sample-summary")).to_contain_text("Votes on 6 of 12")
    expect(page.locator("#lf-sample-table tbody tr")).to_have_count(12)
    assert not LabelingFunction.objects.exists()
    _shot(page, "prelabels_try.png")

    # an invalid regex is refused with the reason
    page.select_option("#lf-kind", "regex")
    page.fill("#lf-pattern", "(unclosed")
    page.click("button[data-action=try]")
    expect(page.locator("#lf-error")).to_contain_text("Invalid regular expression")

    # when they save the keyword function
    page.select_option("#lf-kind", "keyword")
    page.click("#lf-form button[type=submit]")
    expect(page.locator("#lf-table")).to_contain_text("cash words")
    expect(page.locator("#lf-table")).to_contain_text("not applied")

    # and the jobs run (a worker would; here the services run them)
    ham = LabelingFunction.objects.create(
        project=project,
        name="home",
        kind="keyword",
        config={"label": "ham", "keywords": ["home"], "case_sensitive": False, "whole_word": True},
        config_hash="x",
    )
    assert ham.pk
    apply_run(job_id=apply_job_create(project=project).pk)
    job = label_model_run(job_id=label_model_job_create(project=project).pk)
    assert job.status == Job.Status.SUCCEEDED
    page.reload()
    # then the dashboard shows the function's statistics and the label model's coverage
    row = page.locator("#lf-table tr", has_text="cash words")
    expect(row).to_contain_text("50.0%")  # coverage
    expect(row).to_contain_text("100.0%")  # accuracy on the human-labeled item
    expect(page.locator("#label-model-stats")).to_contain_text("100.0%")
    expect(page.locator("#stage-table")).to_contain_text("Labeled by humans")
    _shot(page, "prelabels_dashboard.png")

    # when the annotator opens the labeling page, the pre-label is a suggestion with its source
    other = _page(browser, errors)
    label_url = f"/projects/{project.pk}/label/"
    _login(other, live_server.url, "worker", label_url)
    suggestion = other.locator("#suggestion")
    expect(suggestion).to_be_visible()
    expect(suggestion).to_contain_text(re.compile(r"Suggested\s+(spam|ham)"))
    expect(suggestion).to_contain_text(
        re.compile(r"from label model \((Dawid-Skene|majority vote)\)")
    )
    _shot(other, "prelabels_suggestion.png")
    assert not errors, errors
