"""The quality dashboard and the adjudication page in a real headless Chromium."""

import pytest

from labeling.models import Item
from quality.models import Adjudication
from quality.services.aggregation import project_aggregate
from quality.services.gold import gold_set
from tests.browser import BROWSER_MARKS, SCREENSHOTS, expect
from tests.browser import login as _login
from tests.quality.factories import ItemFactory, answer, project_with_members

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_dashboard_shows_agreement_and_a_reviewer_adjudicates_a_tie(live_server, page, queued):
    # Given a k=3 project: 5 items, one of them a three-way tie, one gold
    project, (a, b, c), reviewer, manager = project_with_members(k=3)
    items = [ItemFactory(project=project, text=f"Review text number {n}.") for n in range(5)]
    plan = [
        ("pos", "pos", "pos"),
        ("neg", "neg", "pos"),
        ("neutral", "neutral", "neutral"),
        ("pos", "neg", "neutral"),  # tie
        ("neg", "neg", "neg"),
    ]
    for item, answers in zip(items, plan, strict=True):
        for user, label in zip((a, b, c), answers, strict=True):
            answer(project, item, user, label)
    gold_set(project=project, entries=[(items[4].external_id, ["neg"])])
    project_aggregate(project=project)
    tie = items[3]

    # When the manager opens the dashboard
    _login(page, live_server.url, manager.username)
    page.goto(f"{live_server.url}/projects/{project.pk}/quality/")
    # Then the figures with their support and the charts are there
    expect(page.locator("[data-testid=n-annotations]")).to_have_text("15")
    overall = page.locator("[data-testid=overall]")
    expect(overall).to_contain_text("Krippendorff")
    expect(overall).to_contain_text("Fleiss")
    expect(page.locator("[data-testid=annotators] tbody tr")).to_have_count(3)
    expect(page.locator("[data-testid=annotators]")).to_contain_text("(n=1)")  # gold answers
    expect(page.locator("body")).to_have_attribute("data-charts-ready", "1")
    assert page.locator("#consensus-chart").bounding_box()["height"] > 100
    expect(page.locator("[data-testid=pending]")).to_have_text("1")
    page.screenshot(path=str(SCREENSHOTS / "quality-dashboard.png"), full_page=True)

    # When a reviewer opens the queue and the tied item
    page.context.clear_cookies()
    _login(page, live_server.url, reviewer.username)
    page.goto(f"{live_server.url}/projects/{project.pk}/adjudication/")
    queue = page.locator("[data-testid=queue]")
    expect(queue).to_contain_text(tie.external_id)
    queue.get_by_role("link", name="Decide").first.click()
    expect(page.locator("[data-testid=item-text]")).to_contain_text("Review text number 3.")
    answers = page.locator("[data-testid=answers] li")
    expect(answers).to_have_count(3)
    expect(page.locator("[data-testid=answers]")).to_contain_text("reliability")
    page.screenshot(path=str(SCREENSHOTS / "quality-adjudication.png"), full_page=True)
    # and chooses "neutral" with a note
    page.get_by_label("neutral").check()
    page.fill("#note", "Reads as neutral to me.")
    page.locator("[data-testid=decide]").click()

    # Then the queue is empty, and the decision is the final label with its record
    expect(page.locator("[data-testid=queue-empty]")).to_be_visible()
    tie = Item.objects.get(pk=tie.pk)
    assert tie.final_labels == ["neutral"]
    assert tie.final_lineage["method"] == "adjudication"
    decision = Adjudication.objects.get(item=tie)
    assert decision.reviewer == reviewer
    assert decision.note == "Reads as neutral to me."
