"""The labeling page in a real headless Chromium: log in through the form, label five items with
the keyboard only, undo one, see the counter and the progress bar move, label it again."""

import re

import pytest

from labeling.models import Annotation, Item
from labeling.services.projects import project_create
from tests.browser import BROWSER_MARKS, expect
from tests.factories import ItemFactory, UserFactory

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_keyboard_only_labeling_with_undo(live_server, page):
    # given a project with eight items, the first of which contains markup, and an annotator
    annotator = UserFactory(username="kbd")
    project = project_create(
        name="Browser project",
        labels=["pos", "neg", "neutral"],  # keys 1, 2, 3
        guidelines="Label the **sentiment**.",
        created_by=None,
    )
    project.memberships.create(user=annotator, role="annotator")
    ItemFactory(project=project, priority=10, text="<b>not bold</b>\n  second line")
    for n in range(7):
        ItemFactory(project=project, priority=5 - n)
    label_url = f"{live_server.url}/projects/{project.pk}/label/"

    # when the annotator logs in through the form (typing, then Enter)
    page.goto(label_url)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.keyboard.type("kbd")  # the username field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type("pw-secret-123")
    page.keyboard.press("Enter")

    # then they land on the labeling page with the first item, its markup shown as text
    expect(page).to_have_url(label_url)
    text = page.locator("#item-text")
    expect(text).to_have_attribute("data-item-id", re.compile(r"\d+"))
    expect(text).to_contain_text("<b>not bold</b>")
    assert page.locator("#item-text b").count() == 0
    counter = page.locator("#my-count")
    bar = page.locator("#progress-project")
    expect(counter).to_have_text("0")
    assert bar.get_attribute("value") == "0"

    # when they label five items, pressing only label keys
    workspace = page.locator("#workspace")
    labelled = []
    for key in ["1", "2", "1", "3", "2"]:
        expect(workspace).to_have_attribute("data-buffered", "1")  # the next item is prefetched
        shown = text.get_attribute("data-item-id")
        labelled.append((int(shown), key))
        page.keyboard.press(key)
        # the keydown handler already put the next item on screen: no waiting for the server
        assert text.get_attribute("data-item-id") not in (None, shown)

    # then the counter says 5 and the progress bar moved to 5 of 8
    expect(counter).to_have_text("5")
    expect(bar).to_have_attribute("value", "5")
    expect(bar).to_have_attribute("max", "8")
    saved = dict(Annotation.objects.filter(annotator=annotator).values_list("item_id", "labels"))
    keys_to_labels = {"1": ["pos"], "2": ["neg"], "3": ["neutral"]}
    assert saved == {item_id: keys_to_labels[key] for item_id, key in labelled}

    # when they press U to undo the last one
    sixth = text.get_attribute("data-item-id")
    page.keyboard.press("u")

    # then the counter goes back to 4, and the undone item is shown with its label highlighted
    last_item, last_key = labelled[-1]
    expect(text).to_have_attribute("data-item-id", str(last_item))
    expect(counter).to_have_text("4")
    expect(bar).to_have_attribute("value", "4")
    expect(page.locator("#undo-note")).to_be_visible()
    previous = keys_to_labels[last_key][0]
    expect(page.locator(".label-button.previous")).to_have_attribute("data-value", previous)
    assert not Annotation.objects.filter(annotator=annotator, item_id=last_item).exists()
    assert Item.objects.get(pk=last_item).status == Item.Status.OPEN

    # when they label it again with another key
    page.keyboard.press("3")

    # then the item that was waiting in the buffer comes back, and the count is 5 again
    expect(text).to_have_attribute("data-item-id", sixth)
    expect(counter).to_have_text("5")
    expect(bar).to_have_attribute("value", "5")
    relabelled = Annotation.objects.get(annotator=annotator, item_id=last_item)
    assert relabelled.labels == ["neutral"]
    assert relabelled.time_spent_ms > 0
