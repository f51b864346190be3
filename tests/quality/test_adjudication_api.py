"""Adjudication flow, gold, overruled answers, settings and permissions over HTTP."""

import pytest
from django.test import Client

from labeling.models import Item
from quality.models import Adjudication
from quality.selectors import adjudication_queue, training_labels
from quality.services.aggregation import project_aggregate
from quality.services.settings import quality_settings_update
from tests.factories import UserFactory
from tests.quality.factories import ItemFactory, answer, project_with_members

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def tied():
    """A k=2 project whose one item tied (pos vs neg) and waits for a reviewer."""
    project, (a, b), reviewer, manager = project_with_members(k=2, annotators=2)
    item = ItemFactory(project=project)
    answer(project, item, a, "pos")
    answer(project, item, b, "neg")
    project_aggregate(project=project)
    return project, item, (a, b), reviewer, manager


def test_reviewer_decides_a_tie_and_the_decision_survives_reaggregation(tied, queued):
    project, item, (_a, _b), reviewer, _ = tied
    api = _client(reviewer)
    queue = api.get(f"/api/projects/{project.pk}/adjudication/").json()
    assert [row["id"] for row in queue["results"]] == [item.pk]
    assert queue["results"][0]["reason"] == "tie"
    detail = api.get(f"/api/projects/{project.pk}/adjudication/{item.pk}/").json()
    assert sorted(x["labels"][0] for x in detail["annotations"]) == ["neg", "pos"]
    assert all("reliability" in x for x in detail["annotations"])
    # When the reviewer chooses "neg"
    response = api.post(
        f"/api/projects/{project.pk}/adjudication/{item.pk}/",
        {"labels": ["neg"], "note": "b is right"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    item.refresh_from_db()
    assert item.final_labels == ["neg"]
    assert item.final_lineage["method"] == "adjudication"
    assert item.final_lineage["reason"] == "tie"
    decision = Adjudication.objects.get(item=item)
    assert decision.reviewer == reviewer
    assert decision.proposed_labels == ["pos"]
    assert sorted(decision.annotation_ids) == sorted(item.annotations.values_list("id", flat=True))
    assert not adjudication_queue(project=project).exists()
    # Then re-aggregation (with another method, even) keeps it
    quality_settings_update(project=project, aggregation_method="dawid_skene")
    project_aggregate(project=project)
    item.refresh_from_db()
    assert item.final_labels == ["neg"]
    assert training_labels(project=project, weighted=True).weights == [1.0]
    # A later decision supersedes the first; both are recorded
    api.post(
        f"/api/projects/{project.pk}/adjudication/{item.pk}/",
        {"labels": ["pos"]},
        content_type="application/json",
    )
    assert Adjudication.objects.filter(item=item).count() == 2
    assert Adjudication.objects.filter(item=item, superseded_at__isnull=True).get().labels == [
        "pos"
    ]
    # Withdrawing hands the item back to aggregation (a tie again)
    assert api.post(f"/api/projects/{project.pk}/adjudication/{item.pk}/revoke/").status_code == 204
    project_aggregate(project=project)
    item.refresh_from_db()
    assert item.final_labels is None
    assert item.final_lineage["needs_adjudication"] is True


def test_annotator_cannot_adjudicate_and_non_member_gets_404(tied):
    project, item, (a, _), _, _ = tied
    annotator = _client(a)
    url = f"/api/projects/{project.pk}/adjudication/{item.pk}/"
    assert annotator.get(url).status_code == 403
    assert (
        annotator.post(url, {"labels": ["pos"]}, content_type="application/json").status_code == 403
    )
    assert annotator.get(f"/api/projects/{project.pk}/adjudication/").status_code == 403
    assert annotator.get(f"/api/projects/{project.pk}/quality/report/").status_code == 403
    assert annotator.get(f"/projects/{project.pk}/adjudication/{item.pk}/").status_code == 403
    assert (
        annotator.post(
            f"/projects/{project.pk}/adjudication/{item.pk}/", {"labels": "pos"}
        ).status_code
        == 403
    )
    item.refresh_from_db()
    assert item.final_labels is None
    stranger = _client(UserFactory(username="stranger"))
    for path in (
        f"/api/projects/{project.pk}/adjudication/",
        url,
        f"/api/projects/{project.pk}/quality/report/",
        f"/api/projects/{project.pk}/overruled/",
        f"/projects/{project.pk}/quality/",
        f"/projects/{project.pk}/adjudication/",
        f"/projects/{project.pk}/adjudication/{item.pk}/",
        f"/projects/{project.pk}/overruled/",
    ):
        assert stranger.get(path).status_code == 404, path


def test_reviewer_can_read_but_only_managers_change_settings_or_gold(tied, queued):
    project, item, _, reviewer, manager = tied
    url = f"/api/projects/{project.pk}/quality/settings/"
    assert _client(reviewer).get(url).json()["aggregation_method"] == "majority_vote"
    body = {"aggregation_method": "one_coin"}
    assert _client(reviewer).patch(url, body, content_type="application/json").status_code == 403
    response = _client(manager).patch(url, body, content_type="application/json")
    assert response.json()["aggregation_method"] == "one_coin"
    gold = {"items": [{"external_id": item.external_id, "labels": ["pos"]}]}
    gold_url = f"/api/projects/{project.pk}/gold/"
    assert (
        _client(reviewer).post(gold_url, gold, content_type="application/json").status_code == 403
    )
    assert _client(manager).post(gold_url, gold, content_type="application/json").json() == {
        "marked": 1
    }


def test_gold_file_import_marks_items_and_reports_bad_lines(tied, queued):
    project, item, (a, b), _, manager = tied
    other = ItemFactory(project=project)
    api = _client(manager)
    bad = b"external_id,label\n" + f"{item.external_id},pos\n{other.external_id},maybe\n".encode()
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(
        f"/api/projects/{project.pk}/gold/import/",
        {"file": SimpleUploadedFile("gold.csv", bad)},
    )
    assert response.status_code == 400
    assert "Line 3" in response.json()["detail"]
    assert not Item.objects.filter(project=project, is_gold=True).exists()  # all or nothing
    good = f"external_id,label\n{item.external_id},pos\n".encode()
    response = api.post(
        f"/api/projects/{project.pk}/gold/import/", {"file": SimpleUploadedFile("g.csv", good)}
    )
    assert response.json() == {"marked": 1}
    item.refresh_from_db()
    assert item.is_gold
    assert item.final_labels == ["pos"]
    assert item.final_lineage["method"] == "gold"
    # Annotators' accuracy on gold appears in the report, with its support
    report = _client(manager).get(f"/api/projects/{project.pk}/quality/report/?").json()
    by_name = {row["annotator"]: row for row in report["annotators"]}
    assert by_name[a.username]["gold_accuracy"] == {"value": 1.0, "n": 1}
    assert by_name[b.username]["gold_accuracy"] == {"value": 0.0, "n": 1}
    assert by_name[b.username]["gold_over_time"][0]["total"] == 1
    assert by_name[b.username]["confusion_gold"][0] == [0, 1, 0]  # true pos, answered neg


def test_overruled_is_opt_in_and_shows_only_settled_items(queued):
    project, (a, b, c), _, _manager = project_with_members(k=3)
    settled = ItemFactory(project=project)
    pending = ItemFactory(project=project)
    answer(project, settled, a, "pos")
    answer(project, settled, b, "pos")
    answer(project, settled, c, "neg")
    answer(project, pending, c, "neg")
    project_aggregate(project=project)
    api = _client(c)
    assert api.get(f"/api/projects/{project.pk}/overruled/").status_code == 403
    assert "does not show" in api.get(f"/projects/{project.pk}/overruled/").content.decode()
    quality_settings_update(project=project, show_overruled=True)
    rows = api.get(f"/api/projects/{project.pk}/overruled/").json()
    assert [(r["item_id"], r["your_labels"], r["final_labels"]) for r in rows] == [
        (settled.pk, ["neg"], ["pos"])
    ]
    assert _client(a).get(f"/api/projects/{project.pk}/overruled/").json() == []


def test_dashboard_and_pages_render_for_reviewers(tied):
    project, item, _, reviewer, manager = tied
    page = _client(manager).get(f"/projects/{project.pk}/quality/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Krippendorff" in html
    assert "Re-aggregate now" in html
    reviewer_page = _client(reviewer).get(f"/projects/{project.pk}/quality/").content.decode()
    assert "Re-aggregate now" not in reviewer_page
    queue = _client(reviewer).get(f"/projects/{project.pk}/adjudication/").content.decode()
    assert item.external_id in queue
    decided = _client(reviewer).post(
        f"/projects/{project.pk}/adjudication/{item.pk}/", {"labels": "neg", "note": ""}
    )
    assert decided.status_code == 302
    item.refresh_from_db()
    assert item.final_labels == ["neg"]
