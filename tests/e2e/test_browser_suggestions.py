"""Suggestions on the labeling page, and keys pressed while the next item loads, in a real
headless Chromium: the suggestion sits above the text with its source in words, its label's
button is marked and pre-selected (Enter takes it), and no key is dropped."""

import re

import pytest

from labeling.management.commands.demo_setup import bbc_corpus_dir, decode_article
from labeling.models import Annotation, Item, Prediction
from labeling.services.projects import project_create
from tests.browser import BROWSER_MARKS, SCREENSHOTS, expect, login
from tests.factories import ItemFactory, UserFactory

pytestmark = BROWSER_MARKS

LABELS = ["business", "entertainment", "politics", "sport", "tech"]  # keys 1..5


def _bbc_text(topic: str, number: int) -> str:
    return decode_article((bbc_corpus_dir() / topic / f"{number:03d}.txt").read_bytes())


def _project(name: str, *, multi_label: bool = False):
    project = project_create(name=name, labels=LABELS, guidelines="", created_by=None)
    if multi_label:
        project.multi_label = True
        project.save(update_fields=["multi_label"])
    return project


def _suggest(item, labels, *, kind="model", confidence=0.87, **fields):
    details = {"model_version": 3, "train_size": 120} if kind == "model" else {}
    defaults = {"source_id": f"classifier:{item.project_id}", "source_version": "3"}
    return Prediction.objects.create(
        item=item,
        project=item.project,
        source_kind=kind,
        labels=labels,
        confidence=confidence,
        details=details,
        **(defaults | fields),
    )


def _suggested_values(page) -> list[str]:
    return page.eval_on_selector_all(
        "#label-buttons .label-button.suggested", "els => els.map(e => e.dataset.value)"
    )


@pytest.mark.django_db(transaction=True)
def test_the_suggestion_is_above_the_text_marked_on_its_button_and_taken_by_enter(
    live_server, page
):
    # Given three long BBC articles, each with a suggestion: a model's, a zero-shot one and
    # another model's, and an annotator
    annotator = UserFactory(username="sugg")
    project = _project("Suggestions")
    project.memberships.create(user=annotator, role="annotator")
    first = ItemFactory(project=project, priority=30, text=_bbc_text("business", 287))
    second = ItemFactory(project=project, priority=20, text=_bbc_text("tech", 10))
    third = ItemFactory(project=project, priority=10, text=_bbc_text("sports", 5))
    accepted = _suggest(first, ["business"])
    _suggest(second, ["tech"], kind="zero_shot", confidence=0.41, source_id="zero_shot:1")
    third_suggestion = _suggest(third, ["politics"], confidence=0.998)
    url = f"{live_server.url}/projects/{project.pk}/label/"

    # When they open the labeling page (a laptop's screen)
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, live_server.url, "sugg", url)
    text = page.locator("#item-text")
    expect(text).to_have_attribute("data-item-id", str(first.pk))

    # Then the suggestion is shown above the text, on screen, with its source in words
    suggestion = page.locator("#suggestion")
    expect(suggestion).to_be_visible()
    expect(suggestion).to_contain_text("business")
    expect(suggestion).to_contain_text("87% confident")
    expect(suggestion).to_contain_text("from model v3, trained on 120 labels")
    box, text_box = suggestion.bounding_box(), text.bounding_box()
    assert box["y"] + box["height"] <= text_box["y"]
    assert box["y"] + box["height"] <= 800  # inside the viewport
    assert text_box["height"] > 800  # the article is longer than the screen
    # and the suggested label's button is marked, with the word "suggested" on it
    assert _suggested_values(page) == ["business"]
    marked = page.locator(".label-button[data-value='business']")
    expect(marked.locator(".suggested-tag")).to_be_visible()
    expect(marked).to_contain_text("suggested")
    expect(page.locator(".label-button[data-value='tech'] .suggested-tag")).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "label-suggestion-long-text.png"))
    # and scrolling down the long text keeps the suggestion in view
    page.evaluate("() => window.scrollTo(0, 1500)")
    assert page.evaluate("() => window.scrollY") > 500
    assert 0 <= suggestion.bounding_box()["y"] < 800
    page.screenshot(path=str(SCREENSHOTS / "label-suggestion-scrolled.png"))

    # When they press Enter
    page.keyboard.press("Enter")

    # Then the suggested label is saved as their answer, recording the suggestion; the next
    # item starts at its top and says where its zero-shot suggestion comes from
    expect(text).to_have_attribute("data-item-id", str(second.pk))
    expect(suggestion).to_contain_text("from zero-shot (label descriptions)")
    expect(suggestion).to_contain_text("41% confident")
    assert _suggested_values(page) == ["tech"]
    assert 0 <= suggestion.bounding_box()["y"] < text.bounding_box()["y"] < 800
    # When they press another label's key instead
    page.keyboard.press("2")
    # Then that label is saved, without the suggestion
    expect(text).to_have_attribute("data-item-id", str(third.pk))
    assert _suggested_values(page) == ["politics"]
    # (a rounded 100% would claim a certainty no model has)
    expect(suggestion).to_contain_text(">99% confident")
    # When they press A on the third
    page.keyboard.press("a")

    # Then
    expect(page.locator("#my-count")).to_have_text("3")
    saved = {
        a.item_id: (a.labels, a.suggestion_id)
        for a in Annotation.objects.filter(annotator=annotator)
    }
    assert saved == {
        first.pk: (["business"], accepted.pk),
        second.pk: (["entertainment"], None),
        third.pk: (["politics"], third_suggestion.pk),
    }


@pytest.mark.django_db(transaction=True)
def test_multi_label_the_suggested_labels_start_selected_and_enter_submits_them(live_server, page):
    # Given a multi-label project whose item has a two-label suggestion
    annotator = UserFactory(username="multi-sugg")
    project = _project("Multi suggestions", multi_label=True)
    project.memberships.create(user=annotator, role="annotator")
    item = ItemFactory(project=project, priority=10, text=_bbc_text("politics", 12))
    ItemFactory(project=project, priority=5)
    suggestion = _suggest(item, ["politics", "business"], confidence=None)

    # When the annotator opens the page
    login(page, live_server.url, "multi-sugg", f"{live_server.url}/projects/{project.pk}/label/")
    expect(page.locator("#item-text")).to_have_attribute("data-item-id", str(item.pk))

    # Then both suggested labels are marked and pressed, the others not
    assert sorted(_suggested_values(page)) == ["business", "politics"]
    pressed = page.eval_on_selector_all(
        ".label-button[aria-pressed='true']", "els => els.map(e => e.dataset.value)"
    )
    assert sorted(pressed) == ["business", "politics"]
    expect(page.locator("#suggestion")).to_contain_text("politics, business")
    page.screenshot(path=str(SCREENSHOTS / "label-suggestion-multi.png"))

    # When they press Enter
    page.keyboard.press("Enter")

    # Then the suggested labels are their answer, recorded with the suggestion
    expect(page.locator("#my-count")).to_have_text("1")
    annotation = Annotation.objects.get(annotator=annotator)
    assert (sorted(annotation.labels), annotation.suggestion_id) == (
        ["business", "politics"],
        suggestion.pk,
    )


@pytest.mark.django_db(transaction=True)
def test_keys_pressed_while_the_next_item_loads_are_applied_in_order(live_server, page):
    # Given fourteen items and an annotator whose page holds the "next" requests back
    annotator = UserFactory(username="fast")
    project = _project("Fast keys")
    project.memberships.create(user=annotator, role="annotator")
    for n in range(14):
        ItemFactory(project=project, priority=100 - n)
    held = []
    hold = {"on": False}

    def next_route(route):
        if hold["on"]:
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r"/api/projects/\d+/next/$"), next_route)
    login(page, live_server.url, "fast", f"{live_server.url}/projects/{project.pk}/label/")
    workspace, text = page.locator("#workspace"), page.locator("#item-text")
    expect(workspace).to_have_attribute("data-buffer-count", "2")  # two items prefetched

    # When the server is slow to hand out items and the annotator presses ten label keys fast
    hold["on"] = True
    keys = ["1", "2", "3", "4", "5", "1", "3", "5", "2", "4"]
    for key in keys:
        page.keyboard.press(key)

    # Then the keys beyond the three items on hand wait, shown on the loading screen
    expect(workspace).to_have_attribute("data-state", "loading")
    expect(workspace).to_have_attribute("data-pending", "7")
    expect(text).to_contain_text("7 keys waiting")
    page.screenshot(path=str(SCREENSHOTS / "label-keys-waiting.png"))

    # When the server answers again
    hold["on"] = False
    while held:
        held.pop(0).continue_()

    # Then every key became an annotation, in the order pressed, none dropped
    expect(page.locator("#my-count")).to_have_text("10")
    expect(workspace).to_have_attribute("data-pending", "0")
    saved = list(
        Annotation.objects.filter(annotator=annotator)
        .order_by("created_at", "id")
        .values_list("item_id", "labels")
    )
    assert [labels for _, labels in saved] == [[LABELS[int(k) - 1]] for k in keys]
    by_priority = list(
        Item.objects.filter(project=project).order_by("-priority").values_list("pk", flat=True)
    )
    assert [item_id for item_id, _ in saved] == by_priority[:10]

    # When they undo
    page.keyboard.press("u")

    # Then the last answer is removed and its item shown again with that label highlighted
    last_item, last_labels = saved[-1]
    expect(text).to_have_attribute("data-item-id", str(last_item))
    expect(page.locator("#my-count")).to_have_text("9")
    expect(page.locator(".label-button.previous")).to_have_attribute("data-value", last_labels[0])
    assert not Annotation.objects.filter(annotator=annotator, item_id=last_item).exists()
