"""The Content-Security-Policy in a real Chromium: the pages work under it (label colours
included, which come as data attributes since no style attribute is allowed), and what it
blocks is reported, so every browser test (tests/browser.py) fails on a violation."""

import pytest
from django.urls import reverse

from labeling.services.projects import project_create
from tests.browser import BROWSER_MARKS, expect, login, new_page
from tests.factories import ItemFactory, UserFactory

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_pages_run_under_the_policy_and_a_violation_is_caught(live_server, browser):
    # Given a manager of a project whose first label is red
    manager = UserFactory(username="csp-boss")
    project = project_create(
        name="CSP project", labels=["pos", "neg"], guidelines="", created_by=None
    )
    project.labels.filter(value="pos").update(color="#ff0000")
    project.memberships.create(user=manager, role="manager")
    ItemFactory(project=project)
    errors: list[str] = []
    page = new_page(browser, errors)
    base = live_server.url

    # When they open every kind of page: project list and detail, import, labeling, their
    # annotations, the model, pre-label and quality dashboards, the API docs
    login(page, base, "csp-boss")
    pages = [reverse("labeling:project_list"), reverse("api-docs")] + [
        reverse(name, kwargs={"project_id": project.pk})
        for name in (
            "labeling:project_detail",
            "labeling:import",
            "labeling:my_annotations",
            "active_learning:dashboard",
            "weak_supervision:dashboard",
            "quality:dashboard",
            "labeling:label",
        )
    ]
    for path in pages:
        response = page.goto(base + path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"].split("; ")
        page.wait_for_load_state("networkidle")

    # Then the label button has its colour, and nothing was blocked
    button = page.locator(".label-button", has_text="pos")
    expect(button).to_have_css("background-color", "rgb(255, 0, 0)")
    assert errors == []

    # When a script tries to add an inline handler and an inline style (as injected markup would)
    page.evaluate(
        """() => document.body.insertAdjacentHTML(
            'beforeend', '<img src="x" onerror="window.pwned = 1"><p style="color: red">x</p>')"""
    )

    # Then neither runs, and the violations are reported as errors
    expect(page.locator("p", has_text="x").last).not_to_have_css("color", "rgb(255, 0, 0)")
    assert page.evaluate("() => window.pwned") is None
    page.wait_for_timeout(200)  # console messages arrive asynchronously
    assert any("Content Security Policy" in error for error in errors), errors
    page.context.close()
