"""The REST API as a custom front-end uses it: projects, the annotate loop, items, annotations,
auth, import and export. Permissions per role are in test_api_permissions.py."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from labeling.models import Annotation, Assignment, Item, Job, Membership, Prediction
from labeling.services.imports import import_run
from labeling.services.jobs import job_create, job_progress
from tests.factories import (
    AnnotationFactory,
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    api_token,
    served,
    submit_served,
)

pytestmark = pytest.mark.django_db

Role = Membership.Role


def url(name, **kwargs):
    return reverse(f"api:{name}", kwargs=kwargs)


def client_for(user):
    client = APIClient()
    client.force_login(user)
    return client


def member(project, name, role=Role.ANNOTATOR):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role=role)
    return user


@pytest.fixture
def ann(annotator):
    return client_for(annotator)


@pytest.fixture
def boss(manager):
    return client_for(manager)


# --- projects --------------------------------------------------------------------------------


def test_project_list_shows_my_projects_with_role_labels_and_progress(project, annotator):
    # Given two items of which one is done by me, and a project I don't belong to
    first, _ = ItemFactory(project=project), ItemFactory(project=project)
    submit_served(project=project, user=annotator, item_id=first.pk, labels=["neg"])
    ProjectFactory(name="Somebody else's")

    # When
    response = client_for(annotator).get(url("project-list"))

    # Then
    assert response.status_code == 200
    (row,) = response.json()
    assert row["id"] == project.pk
    assert row["role"] == "annotator"
    assert row["k"] == 1
    assert row["multi_label"] is False
    assert [label["value"] for label in row["labels"]] == ["pos", "neg", "neutral"]
    assert row["labels"][0] == {
        "value": "pos",
        "color": "#4c78a8",
        "shortcut": "1",
        "description": "",
        "order": 0,
    }
    assert row["progress"] == {"total": 2, "done": 1, "open": 1, "mine": 1}


def test_project_detail_renders_guidelines_and_strips_scripts(annotator, ann, project):
    project.guidelines = "Choose **pos** if happy.\n\n<script>alert(1)</script>"
    project.save()

    response = ann.get(url("project-detail", pid=project.pk))

    body = response.json()
    assert response.status_code == 200
    assert body["guidelines"].startswith("Choose **pos**")
    assert "<strong>pos</strong>" in body["guidelines_html"]
    assert "<script" not in body["guidelines_html"]
    assert body["role"] == "annotator"
    assert body["lease_seconds"] == project.lease_seconds


def test_progress(project, annotator, ann):
    ItemFactory.create_batch(3, project=project)
    done = ItemFactory(project=project)
    submit_served(project=project, user=annotator, item_id=done.pk, labels=["pos"])

    response = ann.get(url("project-progress", pid=project.pk))

    assert response.json() == {"total": 4, "done": 1, "open": 3, "mine": 1}


# --- the annotate loop -----------------------------------------------------------------------


def test_next_submit_next_returns_a_different_item(project, ann):
    # Given two items
    ItemFactory(project=project, priority=1)
    ItemFactory(project=project, priority=0)

    # When I take one, label it, and ask again
    first = ann.post(url("item-next", pid=project.pk), {}, format="json")
    item_id = first.json()["item"]["id"]
    submitted = ann.post(
        url("item-submit", pid=project.pk, iid=item_id),
        {"labels": ["pos"], "time_spent_ms": 1500},
        format="json",
    )
    second = ann.post(url("item-next", pid=project.pk), {}, format="json")

    # Then
    assert first.status_code == 200
    assert set(first.json()) == {"assignment", "item", "suggestions"}
    assert set(first.json()["assignment"]) == {"id", "expires_at"}
    assert set(first.json()["item"]) == {"id", "external_id", "text", "metadata"}
    assert submitted.status_code == 201
    annotation = submitted.json()
    assert annotation["item"] == item_id
    assert annotation["labels"] == ["pos"]
    assert annotation["time_spent_ms"] == 1500
    assert {"id", "created_at", "updated_at"} <= set(annotation)
    assert second.status_code == 200
    assert second.json()["item"]["id"] != item_id
    assert Item.objects.get(pk=item_id).status == Item.Status.DONE


def test_next_returns_the_held_lease_again_unless_excluded(project, ann):
    ItemFactory.create_batch(2, project=project)

    first = ann.post(url("item-next", pid=project.pk), {}, format="json").json()
    again = ann.post(url("item-next", pid=project.pk), {}, format="json").json()
    prefetched = ann.post(
        url("item-next", pid=project.pk), {"exclude": [first["item"]["id"]]}, format="json"
    ).json()

    assert again["item"]["id"] == first["item"]["id"]
    assert prefetched["item"]["id"] != first["item"]["id"]


def test_next_is_204_when_the_queue_is_empty(project, annotator, ann):
    # Given the only item is already annotated by me
    item = ItemFactory(project=project)
    submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])

    response = ann.post(url("item-next", pid=project.pk), {}, format="json")

    assert response.status_code == 204
    assert response.content == b""


def test_skip_passes_the_item_on_for_good(project, ann):
    # Given two items
    skipped_id = ItemFactory(project=project, priority=1).pk
    other_id = ItemFactory(project=project, priority=0).pk

    # When I skip the first one
    assert ann.post(url("item-next", pid=project.pk), {}, format="json").json()["item"]["id"] == (
        skipped_id
    )
    response = ann.post(url("item-skip", pid=project.pk, iid=skipped_id))

    # Then I get the other one, and after it nothing
    assert response.status_code == 204
    following = ann.post(url("item-next", pid=project.pk), {}, format="json")
    assert following.json()["item"]["id"] == other_id
    ann.post(url("item-submit", pid=project.pk, iid=other_id), {"labels": ["neg"]}, format="json")
    assert ann.post(url("item-next", pid=project.pk), {}, format="json").status_code == 204
    assert Item.objects.get(pk=skipped_id).status == Item.Status.OPEN


def test_retract_reoffers_the_item(project, annotator, ann):
    # Given an item I labelled and another one waiting
    item = ItemFactory(project=project, priority=0)
    ItemFactory(project=project, priority=-1)
    ann.post(url("item-next", pid=project.pk), {}, format="json")
    annotation_id = ann.post(
        url("item-submit", pid=project.pk, iid=item.pk), {"labels": ["pos"]}, format="json"
    ).json()["id"]

    # When I undo
    response = ann.post(url("annotation-retract", aid=annotation_id))

    # Then the same item comes back to me, leased, and next/ keeps offering it
    assert response.status_code == 200
    body = response.json()
    assert body["item"]["id"] == item.pk
    assert body["item"]["text"] == item.text
    assert not Annotation.objects.filter(pk=annotation_id).exists()
    assert Item.objects.get(pk=item.pk).status == Item.Status.OPEN
    again = ann.post(url("item-next", pid=project.pk), {}, format="json")
    assert again.json()["item"]["id"] == item.pk


def test_submit_after_expired_lease_on_an_item_someone_else_finished_is_409(project, ann):
    # Given my lease on the only item expired and a colleague then took and finished it
    item = ItemFactory(project=project)
    ann.post(url("item-next", pid=project.pk), {}, format="json")
    Assignment.objects.filter(item=item).update(expires_at=timezone.now() - timedelta(seconds=1))
    colleague = client_for(member(project, "colleague"))
    assert colleague.post(url("item-next", pid=project.pk), {}, format="json").json()["item"][
        "id"
    ] == (item.pk)
    colleague.post(
        url("item-submit", pid=project.pk, iid=item.pk), {"labels": ["neg"]}, format="json"
    )

    # When I submit late
    response = ann.post(
        url("item-submit", pid=project.pk, iid=item.pk), {"labels": ["pos"]}, format="json"
    )

    # Then
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert list(Annotation.objects.values_list("labels", flat=True)) == [["neg"]]


def test_submit_with_an_unknown_label_is_400_naming_it(project, ann):
    item = ItemFactory(project=project)

    response = ann.post(
        url("item-submit", pid=project.pk, iid=item.pk), {"labels": ["joy"]}, format="json"
    )

    assert response.status_code == 400
    assert "joy" in response.json()["detail"]
    assert response.json()["unknown"] == ["joy"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [{}, {"labels": "pos"}, {"labels": ["pos"], "time_spent_ms": -1}],
    ids=["missing", "not-a-list", "negative-time"],
)
def test_submit_validates_its_input(project, ann, payload):
    item = ItemFactory(project=project)

    response = ann.post(url("item-submit", pid=project.pk, iid=item.pk), payload, format="json")

    assert response.status_code == 400
    assert not Annotation.objects.exists()


def test_submit_or_skip_an_item_of_another_project_is_404(project, ann):
    elsewhere = ItemFactory(project=ProjectFactory(name="Elsewhere"))

    submit = ann.post(
        url("item-submit", pid=project.pk, iid=elsewhere.pk), {"labels": ["pos"]}, format="json"
    )
    skip = ann.post(url("item-skip", pid=project.pk, iid=elsewhere.pk))

    assert (submit.status_code, skip.status_code) == (404, 404)


def test_next_offers_suggestions_and_submit_records_the_accepted_one(project, ann):
    # Given an item with a confident model suggestion, a vaguer LLM one and an abstention
    item = ItemFactory(project=project)
    common = {"item": item, "project": project}
    llm = Prediction.objects.create(
        **common, source_kind="llm", source_id="prompt-1", labels=["neg"], confidence=0.6
    )
    model = Prediction.objects.create(
        **common, source_kind="model", source_id="clf", labels=["pos"], confidence=0.9
    )
    Prediction.objects.create(**common, source_kind="lf", source_id="kw", labels=[])

    # When
    body = ann.post(url("item-next", pid=project.pk), {}, format="json").json()
    response = ann.post(
        url("item-submit", pid=project.pk, iid=item.pk),
        {"labels": ["pos"], "suggestion_id": model.pk},
        format="json",
    )

    # Then
    assert [s["id"] for s in body["suggestions"]] == [model.pk, llm.pk]
    assert body["suggestions"][0] == {
        "id": model.pk,
        "source_kind": "model",
        "source_id": "clf",
        "source_version": "1",
        "labels": ["pos"],
        "confidence": 0.9,
        "source": "model v1",
    }
    assert response.status_code == 201
    assert Annotation.objects.get().suggestion_id == model.pk


def test_multi_label_submit(ann, annotator):
    project = ProjectFactory(multi_label=True, labels=["a", "b", "c"])
    MembershipFactory(project=project, user=annotator)
    item = ItemFactory(project=project)
    served(item_id=item.pk, user=annotator)

    response = ann.post(
        url("item-submit", pid=project.pk, iid=item.pk), {"labels": ["c", "a"]}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["labels"] == ["c", "a"]


# --- items -----------------------------------------------------------------------------------


@pytest.fixture
def reviewer_client(project):
    return client_for(member(project, "rev", Role.REVIEWER))


@pytest.fixture
def catalogue(project):
    """Five items: two done, three open; two mention cats."""
    items = [
        ItemFactory(project=project, external_id="a1", text="A cat on a mat", priority=5),
        ItemFactory(project=project, external_id="a2", text="A dog", priority=4),
        ItemFactory(project=project, external_id="a3", text="CATS everywhere", priority=3),
        ItemFactory(project=project, external_id="b1", text="Nothing", priority=2),
        ItemFactory(project=project, external_id="b2", text="Still nothing", priority=1),
    ]
    Item.objects.filter(pk__in=[items[1].pk, items[2].pk]).update(status=Item.Status.DONE)
    return items


def test_items_are_paginated_in_priority_order(project, reviewer_client, catalogue):
    first = reviewer_client.get(url("item-list", pid=project.pk), {"page_size": 2})
    third = reviewer_client.get(url("item-list", pid=project.pk), {"page_size": 2, "page": 3})

    assert first.status_code == 200
    body = first.json()
    assert body["count"] == 5
    assert [row["external_id"] for row in body["results"]] == ["a1", "a2"]
    assert body["previous"] is None
    assert "page=2" in body["next"]
    assert [row["external_id"] for row in third.json()["results"]] == ["b2"]
    assert third.json()["next"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "done"}, ["a2", "a3"]),
        ({"status": "open"}, ["a1", "b1", "b2"]),
        ({"search": "cat"}, ["a1", "a3"]),
        ({"search": "b"}, ["b1", "b2"]),
        ({"external_id": "a3"}, ["a3"]),
        ({"external_id": "a"}, []),
        ({"search": "cat", "status": "open"}, ["a1"]),
    ],
)
def test_item_filters(project, reviewer_client, catalogue, params, expected):
    response = reviewer_client.get(url("item-list", pid=project.pk), params)

    assert [row["external_id"] for row in response.json()["results"]] == expected


def test_item_list_rejects_an_unknown_status(project, reviewer_client):
    response = reviewer_client.get(url("item-list", pid=project.pk), {"status": "maybe"})

    assert response.status_code == 400
    assert "status" in response.json()


def test_item_detail_for_reviewer_shows_final_labels(project, annotator, reviewer_client):
    item = ItemFactory(project=project, metadata={"source": "web"})
    submit_served(project=project, user=annotator, item_id=item.pk, labels=["neg"])

    body = reviewer_client.get(url("item-detail", pid=project.pk, iid=item.pk)).json()

    assert body["metadata"] == {"source": "web"}
    assert body["final_labels"] == ["neg"]
    assert body["status"] == "done"


def test_annotator_may_open_only_the_item_they_work_on(project, ann):
    # Given one item I hold a lease on and one I don't
    mine = ItemFactory(project=project, priority=1)
    other = ItemFactory(project=project, priority=0)
    ann.post(url("item-next", pid=project.pk), {}, format="json")

    # Then
    held = ann.get(url("item-detail", pid=project.pk, iid=mine.pk))
    assert held.status_code == 200
    assert held.json()["text"] == mine.text
    assert ann.get(url("item-detail", pid=project.pk, iid=other.pk)).status_code == 403


def test_annotator_sees_their_annotated_item_without_final_labels(project, annotator, ann):
    item = ItemFactory(project=project)
    submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])

    body = ann.get(url("item-detail", pid=project.pk, iid=item.pk)).json()

    assert body["id"] == item.pk
    assert body["final_labels"] is None


# --- annotations -----------------------------------------------------------------------------


def test_annotators_list_only_their_own_annotations(project, annotator, ann):
    other = member(project, "other")
    mine = AnnotationFactory(item=ItemFactory(project=project), annotator=annotator)
    AnnotationFactory(item=ItemFactory(project=project), annotator=other)

    everything = ann.get(url("annotation-list", pid=project.pk))
    only_mine = ann.get(url("annotation-list", pid=project.pk), {"mine": 1})

    assert [row["id"] for row in everything.json()["results"]] == [mine.pk]
    assert [row["id"] for row in only_mine.json()["results"]] == [mine.pk]
    assert everything.json()["results"][0]["annotator"] == annotator.username


def test_reviewers_list_everyone_s_annotations_unless_mine(project, annotator):
    reviewer = member(project, "rev", Role.REVIEWER)
    client = client_for(reviewer)
    first = AnnotationFactory(item=ItemFactory(project=project), annotator=annotator)
    second = AnnotationFactory(item=ItemFactory(project=project), annotator=reviewer)

    everything = client.get(url("annotation-list", pid=project.pk))
    only_mine = client.get(url("annotation-list", pid=project.pk), {"mine": "1"})
    one_item = client.get(url("annotation-list", pid=project.pk), {"item": first.item_id})

    assert {row["id"] for row in everything.json()["results"]} == {first.pk, second.pk}
    assert [row["id"] for row in only_mine.json()["results"]] == [second.pk]
    assert [row["id"] for row in one_item.json()["results"]] == [first.pk]


def test_edit_my_annotation(project, annotator, ann):
    item = ItemFactory(project=project)
    annotation = submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])

    response = ann.patch(
        url("annotation-update", aid=annotation.pk),
        {"labels": ["neutral"], "time_spent_ms": 300},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["labels"] == ["neutral"]
    assert response.json()["time_spent_ms"] == 300
    item.refresh_from_db()
    assert item.final_labels == ["neutral"]


def test_edit_with_an_unknown_label_is_400(project, annotator, ann):
    annotation = AnnotationFactory(item=ItemFactory(project=project), annotator=annotator)

    response = ann.patch(
        url("annotation-update", aid=annotation.pk), {"labels": ["nope"]}, format="json"
    )

    assert response.status_code == 400
    assert "nope" in response.json()["detail"]


def test_nobody_edits_or_undoes_someone_else_s_annotation(project, annotator, boss):
    annotation = AnnotationFactory(item=ItemFactory(project=project), annotator=annotator)

    edit = boss.patch(
        url("annotation-update", aid=annotation.pk), {"labels": ["neg"]}, format="json"
    )
    undo = boss.post(url("annotation-retract", aid=annotation.pk))

    assert (edit.status_code, undo.status_code) == (403, 403)
    annotation.refresh_from_db()
    assert annotation.labels == ["pos"]


# --- authentication --------------------------------------------------------------------------


def test_token_auth(project, annotator):
    # Given a token obtained with my password
    anonymous = APIClient()
    response = anonymous.post(
        url("token"), {"username": "ann", "password": "pw-secret-123"}, format="json"
    )
    token = response.json()["token"]

    # When I call the API with it
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    projects = client.get(url("project-list"))

    # Then
    assert response.status_code == 201
    assert ApiToken.objects.get(user=annotator).prefix == token[:8]
    assert [p["id"] for p in projects.json()] == [project.pk]


def token_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


def test_token_auth_on_project_urls_checks_membership_and_role(project, annotator):
    # Given items, a member and an outsider with tokens, and another project
    ItemFactory(project=project)
    outsider = UserFactory(username="outsider")
    other = ProjectFactory()
    member = token_client(annotator)

    # When each asks for project URLs (the token read also reads the project and role)
    mine = member.post(url("item-next", pid=project.pk), {}, format="json")
    theirs = member.post(url("item-next", pid=other.pk), {}, format="json")
    missing = member.post(url("item-next", pid=other.pk + 1000), {}, format="json")
    as_annotator_export = member.get(url("export", pid=project.pk))
    outside = token_client(outsider).post(url("item-next", pid=project.pk), {}, format="json")

    # Then: the same answers as with a session
    assert mine.status_code == 200
    assert (theirs.status_code, missing.status_code, outside.status_code) == (404, 404, 404)
    assert as_annotator_export.status_code == 403
    session = client_for(outsider).post(url("item-next", pid=project.pk), {}, format="json")
    assert session.status_code == outside.status_code


def test_token_of_an_inactive_user_is_refused_on_project_urls(project, annotator):
    client = token_client(annotator)
    annotator.is_active = False
    annotator.save()

    response = client.post(url("item-next", pid=project.pk), {}, format="json")

    assert response.status_code == 401


def test_wrong_password_gets_no_token(annotator):
    response = APIClient().post(
        url("token"), {"username": "ann", "password": "wrong"}, format="json"
    )

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("header", [None, "Token not-a-real-token"])
def test_anonymous_or_bad_token_is_401(project, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(url("project-list"))

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_session_auth_requires_csrf_on_writes(project, annotator):
    # Given a browser session (CSRF enforced, as in a real browser)
    ItemFactory(project=project)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(annotator)

    without = browser.post(url("item-next", pid=project.pk), {}, format="json")
    token = "f" * 32  # the page's JavaScript sends the csrftoken cookie back as a header
    browser.cookies["csrftoken"] = token
    with_token = browser.post(
        url("item-next", pid=project.pk), {}, format="json", HTTP_X_CSRFTOKEN=token
    )

    assert without.status_code == 403
    assert "CSRF" in without.json()["detail"]
    assert with_token.status_code == 200


# --- jobs ------------------------------------------------------------------------------------


def test_job_detail_shows_progress(project, ann):
    job = job_create(kind=Job.Kind.IMPORT, project=project, progress_total=200)
    job_progress(job=job, done=50, message="Reading rows")

    body = ann.get(url("job-detail", jid=job.pk)).json()

    assert body == {
        "id": job.pk,
        "kind": "import",
        "status": "pending",
        "progress_done": 50,
        "progress_total": 200,
        "percent": 25,
        "message": "",  # an annotator polls progress only: no message, error or result
        "stuck": False,
        "error": "",
        "result": {},
        "created_at": body["created_at"],
        "started_at": None,
        "finished_at": None,
        "items_per_second": None,
        "eta_seconds": None,
    }


def test_job_list_is_newest_first_and_filters_by_kind(project, boss):
    older = job_create(kind=Job.Kind.IMPORT, project=project)
    newer = job_create(kind=Job.Kind.TRAIN, project=project)
    job_create(kind=Job.Kind.IMPORT, project=ProjectFactory(name="Other"))

    everything = boss.get(url("job-list", pid=project.pk)).json()
    imports = boss.get(url("job-list", pid=project.pk), {"kind": "import"}).json()

    assert [job["id"] for job in everything["results"]] == [newer.pk, older.pk]
    assert [job["id"] for job in imports["results"]] == [older.pk]


# --- export ----------------------------------------------------------------------------------


@pytest.fixture
def labelled(project, annotator):
    """Three items: one labelled pos, one labelled neg, one open."""
    items = [ItemFactory(project=project, external_id=f"x{i}") for i in range(3)]
    submit_served(project=project, user=annotator, item_id=items[0].pk, labels=["pos"])
    submit_served(project=project, user=annotator, item_id=items[1].pk, labels=["neg"])
    return items


def _body(response):
    return b"".join(response.streaming_content).decode()


def test_export_streams_jsonl_as_an_attachment(project, boss, labelled, settings):
    # Given exports read one item per chunk
    settings.EXPORT_CHUNK_SIZE = 1

    response = boss.get(url("export", pid=project.pk), {"format": "jsonl"})

    # Then the body arrives chunk by chunk, never built whole in memory
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    assert len(chunks) == 3
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["Content-Disposition"].endswith('.jsonl"')
    rows = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    assert sorted((row["id"], row["final_labels"]) for row in rows) == [
        ("x0", ["pos"]),
        ("x1", ["neg"]),
        ("x2", None),
    ]


def test_export_csv_and_json(project, boss, labelled):
    as_csv = boss.get(url("export", pid=project.pk), {"format": "csv", "finished_only": 1})
    as_json = boss.get(url("export", pid=project.pk), {"format": "json", "label": "neg"})

    assert as_csv["Content-Type"] == "text/csv; charset=utf-8"
    assert as_csv["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(_body(as_csv))))
    assert sorted(row["id"] for row in rows) == ["x0", "x1"]
    assert as_json["Content-Type"].startswith("application/json")
    assert [row["id"] for row in json.loads(_body(as_json))] == ["x1"]


def test_export_changed_since_takes_iso_dates(project, boss, labelled):
    Item.objects.filter(pk=labelled[0].pk).update(updated_at=timezone.now() - timedelta(days=3))
    Item.objects.filter(pk__in=[labelled[1].pk, labelled[2].pk]).update(
        updated_at=timezone.now() - timedelta(days=10)
    )
    since = (timezone.now() - timedelta(days=5)).isoformat()

    response = boss.get(url("export", pid=project.pk), {"changed_since": since})

    assert [json.loads(line)["id"] for line in _body(response).splitlines()] == ["x0"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xml"}, "format"), ({"changed_since": "last tuesday"}, "changed_since")],
)
def test_export_with_bad_arguments_is_400_not_a_broken_download(project, boss, params, field):
    response = boss.get(url("export", pid=project.pk), params)

    assert response.status_code == 400
    assert not response.streaming
    assert field in json.dumps(response.json())


# --- import ----------------------------------------------------------------------------------


def _upload(name="reviews.csv", content=b"review_id,body,stars\nr1,Great phone,pos\nr2,Meh,neg\n"):
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_import_queues_a_job_that_a_worker_runs(project, boss, django_capture_on_commit_callbacks):
    # When a manager uploads a CSV with its column mapping
    with django_capture_on_commit_callbacks() as queued:
        response = boss.post(
            url("import-create", pid=project.pk),
            {
                "file": _upload(),
                "format": "csv",
                "text_field": "body",
                "id_field": "review_id",
                "label_field": "stars",
                "skip_invalid": "false",
                "labels_are_final": "true",
            },
            format="multipart",
        )

    # Then the job is accepted, pending, and queued only once the request commits
    assert response.status_code == 202
    body = response.json()
    assert (body["kind"], body["status"]) == ("import", "pending")
    job = Job.objects.get(pk=body["id"])
    assert job.project == project
    assert job.params["mapping"]["text"] == "body"
    assert job.params["labels_are_final"] is True
    assert len(queued) == 1
    assert not Item.objects.exists()  # nothing ran inside the request

    # When a worker runs it, the job endpoint reports the outcome
    import_run(job_id=job.pk)
    done = boss.get(url("job-detail", jid=job.pk)).json()
    assert done["status"] == "succeeded"
    assert done["result"]["created"] == 2
    assert dict(Item.objects.values_list("external_id", "final_labels")) == {
        "r1": ["pos"],
        "r2": ["neg"],
    }


def test_import_guesses_the_format_from_the_file_name(project, boss):
    response = boss.post(
        url("import-create", pid=project.pk),
        {"file": _upload("items.jsonl", b'{"text": "hello"}\n'), "format": ""},
        format="multipart",
    )

    assert response.status_code == 202
    assert Job.objects.get(pk=response.json()["id"]).params["format"] == "jsonl"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "file"),
        ({"file": "not a file"}, "file"),
        ({"format": "xml"}, "format"),
        ({"file_content": b""}, "file"),
        ({"text_field": "body", "id_field": "body"}, "mapping"),
    ],
    ids=["no-file", "not-a-file", "bad-format", "empty-file", "same-columns"],
)
def test_import_refuses_bad_requests_with_a_reason(project, boss, data, field):
    data = dict(data)
    if "file" not in data and data != {}:
        data["file"] = _upload(content=data.pop("file_content", b"body\nhello\n"))

    response = boss.post(url("import-create", pid=project.pk), data, format="multipart")

    assert response.status_code == 400
    assert field in json.dumps(response.json())
    assert not Job.objects.exists()


def test_import_passes_csv_delimiters_on(project, boss):
    response = boss.post(
        url("import-create", pid=project.pk),
        {
            "file": _upload(content=b"body;tags\nhello;pos+neg\n"),
            "format": "csv",
            "text_field": "body",
            "label_field": "tags",
            "delimiter": ";",
            "label_delimiter": "+",
        },
        format="multipart",
    )

    assert response.status_code == 202
    mapping = Job.objects.get(pk=response.json()["id"]).params["mapping"]
    assert (mapping["delimiter"], mapping["label_delimiter"]) == (";", "+")


def test_annotation_loop_payloads_match_their_documented_serializers(project, annotator):
    # Given a leased item with metadata and two suggestions, one without a confidence
    from labeling.api.selectors import item_suggestions
    from labeling.api.views.annotate import (
        AnnotationSerializer,
        NextItemSerializer,
        annotation_payload,
        next_item_payload,
    )
    from labeling.services.queue import queue_next_item

    item = ItemFactory(project=project, metadata={"source": "wire", "n": 3})
    common = {"item": item, "project": project}
    Prediction.objects.create(**common, source_kind="llm", source_id="p", labels=["neg"])
    Prediction.objects.create(
        **common, source_kind="model", source_id="clf", labels=["pos"], confidence=0.75
    )
    assignment = queue_next_item(project=project, user=annotator)

    # When
    built = next_item_payload(assignment, show_external_id=True)
    annotation = submit_served(
        project=project, user=annotator, item_id=item.pk, labels=["pos"], time_spent_ms=1200
    )

    # Then: the hand-built responses are what the serializers (the documented schema) give
    assignment.suggestions = item_suggestions(item=assignment.item)
    assert built == json.loads(json.dumps(NextItemSerializer(assignment).data))
    assert [s["source_id"] for s in built["suggestions"]] == ["clf", "p"]
    assert annotation_payload(annotation) == AnnotationSerializer(annotation).data
    stored = Annotation.objects.get(pk=annotation.pk)
    assert annotation_payload(stored) == annotation_payload(annotation) | {
        "created_at": AnnotationSerializer(stored).data["created_at"],
        "updated_at": AnnotationSerializer(stored).data["updated_at"],
    }


# ---- label descriptions, queue order, external ids -------------------------------------------


@pytest.mark.django_db
def test_a_manager_sets_label_descriptions_which_bump_the_label_set_version(
    django_capture_on_commit_callbacks,
):
    project = ProjectFactory(labels=["sport", "tech"])
    manager = UserFactory()
    MembershipFactory(project=project, user=manager, role=Membership.Role.MANAGER)
    client = APIClient()
    client.force_authenticate(manager)

    with django_capture_on_commit_callbacks():
        response = client.patch(
            f"/api/projects/{project.pk}/",
            {"label_descriptions": {"sport": "matches,   athletes"}, "show_external_id": True},
            format="json",
        )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["label_set_version"] == 2
    assert body["show_external_id"] is True
    assert {lab["value"]: lab["description"] for lab in body["labels"]} == {
        "sport": "matches, athletes",
        "tech": "",
    }
    # the zero-shot suggestions are recomputed from the new descriptions
    assert Job.objects.filter(project=project, kind=Job.Kind.RANK).exists()

    # an unknown label is refused naming the field, and nothing is written
    response = client.patch(
        f"/api/projects/{project.pk}/",
        {"label_descriptions": {"sport": "x", "nope": "y"}},
        format="json",
    )
    assert response.status_code == 400
    assert "label_descriptions" in response.content.decode()
    project.refresh_from_db()
    assert project.label_set_version == 2
    assert project.labels.get(value="sport").description == "matches, athletes"


@pytest.mark.django_db
def test_an_annotator_cannot_change_label_descriptions_or_the_queue_order():
    project = ProjectFactory(labels=["sport", "tech"])
    annotator = UserFactory()
    MembershipFactory(project=project, user=annotator)
    client = APIClient()
    client.force_authenticate(annotator)
    response = client.patch(
        f"/api/projects/{project.pk}/",
        {"label_descriptions": {"sport": "x"}, "queue_order": "file"},
        format="json",
    )
    assert response.status_code == 403
    project.refresh_from_db()
    assert (project.label_set_version, project.queue_order) == (1, "random")


@pytest.mark.parametrize("show", [False, True])
def test_the_next_item_carries_its_external_id_only_when_the_project_shows_it(
    project, annotator, show
):
    # ids often carry the answer or mark a gold item: hidden unless the manager shows them
    project.show_external_id = show
    project.save()
    ItemFactory(project=project, external_id="gold-17")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(annotator)}")

    served = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()

    assert served["item"]["external_id"] == ("gold-17" if show else "")
