"""The REST API, the dashboard page and the admin of the pre-label pipeline: roles, errors,
write-only API key, jobs queued on commit."""

import pytest
from django.urls import reverse

from labeling.models import Job, Membership
from tests.factories import MembershipFactory, UserFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision.models import LabelingFunction, WeakSupervisionSettings
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.lfs import lf_create

Role = Membership.Role
pytestmark = pytest.mark.django_db


@pytest.fixture
def users(spam_project):
    out = {}
    for role in (Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER):
        user = UserFactory(username=f"u-{role}")
        MembershipFactory(project=spam_project, user=user, role=role)
        out[role] = user
    out["stranger"] = UserFactory(username="stranger")
    return out


def url(project, path):
    return f"/api/projects/{project.pk}/{path}"


def test_roles_on_the_api(client, spam_project, users):
    # non-members get 404, annotators 403 on reads, reviewers read, managers write
    client.force_login(users["stranger"])
    assert client.get(url(spam_project, "prelabels/")).status_code == 404
    client.force_login(users[Role.ANNOTATOR])
    assert client.get(url(spam_project, "labeling-functions/")).status_code == 403
    client.force_login(users[Role.REVIEWER])
    assert client.get(url(spam_project, "prelabels/")).status_code == 200
    response = client.post(
        url(spam_project, "labeling-functions/"),
        {"name": "x", "kind": "keyword", "config": {"label": "spam", "keywords": ["a"]}},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert client.get(url(spam_project, "prelabel-settings/")).status_code == 403


def test_manager_creates_tries_edits_and_applies_a_function(
    client, spam_project, users, django_capture_on_commit_callbacks
):
    make_items(spam_project, ["win cash", "hello there", "cash prize"], human={0: "spam"})
    client.force_login(users[Role.MANAGER])
    bad = client.post(
        url(spam_project, "labeling-functions/"),
        {"name": "bad", "kind": "regex", "config": {"label": "spam", "pattern": "(a"}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "pattern"
    assert "Invalid regular expression" in bad.json()["detail"]
    tried = client.post(
        url(spam_project, "labeling-functions/try/"),
        {"kind": "keyword", "config": {"label": "spam", "keywords": ["cash"]}},
        content_type="application/json",
    ).json()
    assert tried["votes"] == 2
    assert tried["accuracy"] == 1.0
    created = client.post(
        url(spam_project, "labeling-functions/"),
        {"name": "cash", "kind": "keyword", "config": {"label": "spam", "keywords": ["cash"]}},
        content_type="application/json",
    )
    assert created.status_code == 201
    lf_id = created.json()["id"]
    edited = client.patch(
        url(spam_project, f"labeling-functions/{lf_id}/"),
        {"config": {"label": "spam", "keywords": ["prize"]}},
        content_type="application/json",
    ).json()
    assert edited["version"] == 2
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            url(spam_project, "labeling-functions/apply/"), {}, content_type="application/json"
        )
    assert response.status_code == 202
    assert response.json()["kind"] == "lf"
    assert len(callbacks) == 1  # the task is sent only after commit
    apply_run(job_id=response.json()["id"])
    analysis = client.get(url(spam_project, "labeling-functions/analysis/")).json()
    assert analysis["functions"][0]["votes"] == 1
    assert client.delete(url(spam_project, f"labeling-functions/{lf_id}/")).status_code == 204
    assert not LabelingFunction.objects.exists()


def test_api_key_is_write_only(client, spam_project, users):
    client.force_login(users[Role.MANAGER])
    response = client.patch(
        url(spam_project, "prelabel-settings/"),
        {"llm_api_key": "sk-very-secret", "llm_enabled": True, "cascade_threshold": 0.9},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert "sk-very-secret" not in response.content.decode()
    assert body["llm_api_key_set"] is True
    assert "llm_api_key" not in body
    # an empty key keeps the stored one
    client.patch(
        url(spam_project, "prelabel-settings/"),
        {"llm_api_key": ""},
        content_type="application/json",
    )
    assert WeakSupervisionSettings.objects.get().llm_api_key == "sk-very-secret"
    bad = client.patch(
        url(spam_project, "prelabel-settings/"),
        {"cascade_threshold": 1.5},
        content_type="application/json",
    )
    assert bad.status_code == 400
    dashboard = client.get(url(spam_project, "prelabels/")).content.decode()
    assert "sk-very-secret" not in dashboard


def test_llm_and_cascade_endpoints_refuse_until_configured(client, spam_project, users):
    client.force_login(users[Role.MANAGER])
    response = client.post(url(spam_project, "llm/"), {}, content_type="application/json")
    assert response.status_code == 400
    assert "switched off" in response.json()["detail"]
    response = client.post(url(spam_project, "cascade/"), {}, content_type="application/json")
    assert response.status_code == 400
    assert not Job.objects.exists()


def test_dashboard_page_roles_and_content(client, spam_project, users):
    make_items(spam_project, ["win cash", "hello"], human={1: "ham"})
    lf_create(
        project=spam_project,
        name="cash words",
        kind="keyword",
        config={"label": "spam", "keywords": ["cash"]},
    )
    apply_run(job_id=apply_job_create(project=spam_project).pk)
    page = reverse("weak_supervision:dashboard", kwargs={"project_id": spam_project.pk})
    client.force_login(users["stranger"])
    assert client.get(page).status_code == 404
    client.force_login(users[Role.ANNOTATOR])
    assert client.get(page).status_code == 403
    client.force_login(users[Role.REVIEWER])
    html = client.get(page).content.decode()
    assert "cash words" in html
    assert "New labeling function" not in html  # reviewers only read
    client.force_login(users[Role.MANAGER])
    html = client.get(page).content.decode()
    assert "New labeling function" in html
    assert "50.0%" in html  # coverage of "cash words"


def test_admin_settings_inline_hides_the_key_and_lf_admin_validates(admin_client, spam_project):
    WeakSupervisionSettings.objects.create(project=spam_project, llm_api_key="sk-admin-secret")
    html = admin_client.get(
        reverse("admin:labeling_project_change", args=[spam_project.pk])
    ).content.decode()
    assert "pre-label settings" in html.lower()
    assert "sk-admin-secret" not in html
    response = admin_client.post(
        reverse("admin:weak_supervision_labelingfunction_add"),
        {
            "project": spam_project.pk,
            "name": "r",
            "kind": "regex",
            "label": "spam",
            "pattern": "(oops",
            "active": "on",
        },
    )
    assert response.status_code == 200
    assert "Invalid regular expression" in response.content.decode()
    response = admin_client.post(
        reverse("admin:weak_supervision_labelingfunction_add"),
        {
            "project": spam_project.pk,
            "name": "k",
            "kind": "keyword",
            "label": "spam",
            "keywords": "win\ncash",
            "whole_word": "on",
            "active": "on",
        },
    )
    assert response.status_code == 302
    lf = LabelingFunction.objects.get(name="k")
    assert lf.config["keywords"] == ["win", "cash"]
    assert lf.version == 1
