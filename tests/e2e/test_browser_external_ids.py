"""The labeling page names items by their external id only when the manager switched it on:
ids often carry the answer (a folder, a class prefix)."""

import pytest

from labeling.services.projects import project_create
from tests.browser import BROWSER_MARKS, expect, login
from tests.factories import ItemFactory, UserFactory

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("show", [False, True])
def test_external_ids_are_shown_only_when_the_manager_switches_them_on(live_server, page, show):
    annotator = UserFactory(username=f"ids-{show}")
    project = project_create(
        name=f"Ids {show}",
        labels=[{"value": "sport", "description": "matches, athletes"}, "tech"],
        created_by=None,
    )
    project.show_external_id = show
    project.save()
    project.memberships.create(user=annotator, role="annotator")
    ItemFactory(project=project, external_id="sport/001", text="A match report", priority=2)
    ItemFactory(project=project, external_id="tech/002", text="A phone review", priority=1)

    login(page, live_server.url, annotator.username, f"/projects/{project.pk}/label/")

    meta = page.locator("#item-meta")
    expect(page.locator("#item-text")).to_contain_text("A match report")
    if show:
        expect(meta).to_have_text("Item sport/001")
    else:
        expect(meta).to_have_text("Item 1 of this session")
    page.keyboard.press("1")
    expect(page.locator("#item-text")).to_contain_text("A phone review")
    status = page.locator("#status")
    if show:
        expect(status).to_contain_text("sport/001")
    else:
        expect(status).to_contain_text("item 1 of this session")
        assert "sport/001" not in page.content()
        assert "tech/002" not in page.content()
    # the label's one-line description is the button's tooltip
    expect(page.locator('.label-button[data-value="sport"]')).to_have_attribute(
        "title", "matches, athletes"
    )
