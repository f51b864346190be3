"""The quality dashboard's words: plurals that agree with their numbers, no figures that cannot
exist (agreement on items nobody answered twice), a hint when the project cannot measure
agreement (k = 1, or no item with two answers), and no empty charts drawn with axes."""

import pytest
from django.test import Client

from quality.models import AnnotatorReliability
from quality.services.aggregation import project_aggregate
from tests.quality.factories import ItemFactory, answer, project_with_members

pytestmark = pytest.mark.django_db

HINT = "Agreement needs at least two annotators per item: set k"


def _dashboard(project, user):
    client = Client()
    client.force_login(user)
    response = client.get(f"/projects/{project.pk}/quality/?fresh=1")
    assert response.status_code == 200
    return response.content.decode()


def test_a_k1_project_gets_the_hint_and_no_meaningless_figures():
    # Given k = 1: every item answered once, by one of two annotators
    project, (a, b), _, manager = project_with_members(k=1, annotators=2)
    for n in range(4):
        answer(project, ItemFactory(project=project), a if n % 2 else b, "pos")

    page = _dashboard(project, manager)

    assert HINT in page
    assert "no item has two answers yet" in page
    assert "exactly 0 answers" not in page
    assert 'data-testid="overall"' not in page  # the agreement table is all undefined
    assert "pairs)" not in page
    assert 'data-testid="consensus-chart-empty"' in page
    assert 'id="consensus-chart"' not in page
    assert 'data-testid="gold-chart-empty"' in page


def test_plurals_agree_with_their_numbers_when_agreement_exists():
    # Given k = 2 and two annotators who answered the same three items
    project, (a, b), _, manager = project_with_members(k=2, annotators=2)
    for n in range(3):
        item = ItemFactory(project=project)
        answer(project, item, a, "pos")
        answer(project, item, b, "pos" if n else "neg")
    project_aggregate(project=project)

    page = _dashboard(project, manager)

    assert HINT not in page
    assert 'data-testid="overall"' in page
    assert "items with exactly 2 answers" in page
    assert "(1 pair)" in page
    assert "(1 pairs)" not in page
    assert 'id="consensus-chart"' in page


def test_a_k1_project_with_some_doubly_answered_items_still_says_how_k_works():
    project, (a, b), _, manager = project_with_members(k=1, annotators=2)
    item = ItemFactory(project=project)
    item.annotations_wanted = 2
    item.save()
    answer(project, item, a, "pos")
    answer(project, item, b, "pos")

    page = _dashboard(project, manager)

    assert HINT in page
    assert "Only the 1 item that already has two or more answers counts now" in page


def test_the_admin_spells_annotator_reliabilities(admin_client):
    assert AnnotatorReliability._meta.verbose_name_plural == "annotator reliabilities"
    assert "Annotator reliabilities" in admin_client.get("/admin/").content.decode()
