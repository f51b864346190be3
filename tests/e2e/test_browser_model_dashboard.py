"""The model dashboard and the accept-suggestion key in a real headless Chromium."""

import re

import pytest

from active_learning.services.ranking import al_settings_get
from labeling.models import Annotation, Item, Membership, Prediction
from models_app.models import ModelVersion
from tests.browser import BROWSER_MARKS, SCREENSHOTS, expect
from tests.factories import MembershipFactory, UserFactory
from tests.models_app import flywheel
from tests.models_app.factories import label_items, topic_project
from tests.models_app.flywheel import train_once

pytestmark = BROWSER_MARKS

no_broker = flywheel.no_broker  # the fixture: tasks are recorded, the test runs the jobs


def _login(page, live_server, username, next_url):
    page.goto(next_url)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-secret-123")
    page.keyboard.press("Enter")
    expect(page).to_have_url(next_url)


@pytest.fixture
def trained_project(settings, no_broker, django_capture_on_commit_callbacks):
    settings.EMBEDDING_MODEL = "hashing"
    project = topic_project(per_topic=20)
    al = al_settings_get(project=project)
    al.diversity_batch = 0
    al.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30])
    train_once(project, no_broker, django_capture_on_commit_callbacks)
    assert ModelVersion.objects.filter(project=project, status="active").exists()
    return project


@pytest.mark.django_db(transaction=True)
def test_dashboard_shows_charts_versions_and_retrains(live_server, page, trained_project):
    manager = UserFactory(username="al-boss")
    MembershipFactory(project=trained_project, user=manager, role=Membership.Role.MANAGER)
    url = f"{live_server.url}/projects/{trained_project.pk}/model/"

    # when the manager opens the dashboard
    _login(page, live_server, "al-boss", url)

    # then the learning curve has one point per version and the distribution one bar per class
    expect(page.locator("#active-version")).to_have_text("v1")
    # Chart.js is a deferred script: wait until it has drawn both charts.
    page.wait_for_function(
        "() => window.Chart && Chart.getChart('learning-curve')"
        " && Chart.getChart('label-distribution')"
    )
    points = page.evaluate(
        "() => Chart.getChart('learning-curve').data.datasets[0].data.map(p => [p.x, p.version])"
    )
    assert points == [[30, 1]]
    bars = page.evaluate("() => Chart.getChart('label-distribution').data.datasets[0].data")
    assert sorted(bars) == [10, 10, 10]
    expect(page.locator("table.versions tr[data-version='1']")).to_contain_text("Active")
    expect(page.locator("table.jobs")).to_contain_text("Train")
    page.screenshot(path=str(SCREENSHOTS / "al-dashboard.png"), full_page=True)

    # when they press "Retrain now"
    page.click("#retrain-now")
    # then a training job is queued and reported
    expect(page.locator("#dashboard-status")).to_contain_text(
        re.compile(r"Training job #\d+ queued")
    )


@pytest.mark.django_db(transaction=True)
def test_annotator_accepts_the_suggestion_with_one_key(live_server, page, trained_project):
    annotator = UserFactory(username="al-ann")
    MembershipFactory(project=trained_project, user=annotator, role=Membership.Role.ANNOTATOR)
    url = f"{live_server.url}/projects/{trained_project.pk}/label/"
    _login(page, live_server, "al-ann", url)

    # the first item shows the model's suggestion with its confidence
    text = page.locator("#item-text")
    expect(text).to_have_attribute("data-item-id", re.compile(r"\d+"))
    item_id = int(text.get_attribute("data-item-id"))
    prediction = Prediction.objects.get(item_id=item_id, source_kind="model")
    suggestion = page.locator("#suggestion")
    expect(suggestion).to_be_visible()
    expect(suggestion).to_contain_text(prediction.labels[0])
    expect(suggestion).to_contain_text(f"{round(prediction.confidence * 100)}%")
    page.screenshot(path=str(SCREENSHOTS / "al-accept.png"))

    # when the annotator presses A
    page.keyboard.press("a")

    # then a human annotation with the suggested label is saved, recording the suggestion
    expect(page.locator("#my-count")).to_have_text("1")
    annotation = Annotation.objects.get(annotator=annotator, item_id=item_id)
    assert annotation.labels == prediction.labels
    assert annotation.suggestion_id == prediction.pk
