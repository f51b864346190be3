"""The REST API, the dashboard page and the admin of the pre-label pipeline: roles, errors,
write-only API key, jobs queued on commit."""

import pytest
from django.urls import reverse

from labeling.models import Job, Membership
from tests.factories import MembershipFactory, UserFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision.crypto import unseal
from weak_supervision.models import LabelingFunction, WeakSupervisionSettings
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.common import llm_config, ws_settings_for
from weak_supervision.services.lfs import lf_create
from weak_supervision.services.settings import ws_settings_update

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


def test_api_key_is_write_only(client, spam_project, users, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
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
    row = WeakSupervisionSettings.objects.get()
    assert unseal(row.llm_api_key_sealed).secret == "sk-very-secret"
    bad = client.patch(
        url(spam_project, "prelabel-settings/"),
        {"cascade_threshold": 1.5},
        content_type="application/json",
    )
    assert bad.status_code == 400
    dashboard = client.get(url(spam_project, "prelabels/")).content.decode()
    assert "sk-very-secret" not in dashboard
    page = reverse("weak_supervision:dashboard", kwargs={"project_id": spam_project.pk})
    assert "sk-very-secret" not in client.get(page).content.decode()
    # an explicit clear removes it
    cleared = client.patch(
        url(spam_project, "prelabel-settings/"),
        {"llm_api_key_clear": True},
        content_type="application/json",
    )
    assert cleared.json()["llm_api_key_set"] is False
    assert WeakSupervisionSettings.objects.get().llm_api_key_sealed == ""


def _raw_settings_row(project) -> dict:
    """The row as the database stores it (what a dump or a read replica would show)."""
    from django.db import connection

    table = WeakSupervisionSettings._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE project_id = %s", [project.pk])
        columns = [c[0] for c in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


def test_the_llm_endpoint_is_the_operators_choice_and_a_key_stays_with_its_endpoint(
    client, spam_project, users, settings
):
    settings.LLM_BASE_URL = "https://llm.example.org/v1"
    settings.LLM_ALLOWED_BASE_URLS = ["http://127.0.0.1:8001/v1/", "https://other.example.org/v1"]
    client.force_login(users[Role.MANAGER])
    settings_url = url(spam_project, "prelabel-settings/")
    before = _raw_settings_row(spam_project) if WeakSupervisionSettings.objects.exists() else None
    for refused in (
        "http://127.0.0.1:5432",  # the database's port: no scanning of internal services
        "http://127.0.0.1:8001/v2",  # an allowed host with another path
        "https://llm.example.org:8443/v1",  # another port
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:8001/v1",
    ):
        response = client.patch(
            settings_url,
            {"llm_base_url": refused, "llm_api_key": "sk-x"},
            content_type="application/json",
        )
        assert response.status_code == 400, refused
        assert response.json()["field"] == "llm_base_url"
    after = _raw_settings_row(spam_project) if WeakSupervisionSettings.objects.exists() else None
    assert after == before, "a refused endpoint writes nothing"

    # an allowed one, however it is spelt, is stored normalised; its key is sealed
    response = client.patch(
        settings_url,
        {"llm_base_url": "HTTP://127.0.0.1:8001/v1", "llm_api_key": "sk-project-plaintext"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["llm_base_url"] == "http://127.0.0.1:8001/v1"
    assert response.json()["llm_api_key_set"] is True
    raw = _raw_settings_row(spam_project)
    assert "sk-project-plaintext" not in repr(raw)
    assert unseal(raw["llm_api_key_sealed"]).endpoint == "http://127.0.0.1:8001/v1"
    config = llm_config(project=spam_project)
    assert (config.api_key, config.api_key_source) == ("sk-project-plaintext", "project")
    assert "sk-project-plaintext" not in repr(config)

    # another endpoint: the project's key is cleared, never carried over
    response = client.patch(
        settings_url,
        {"llm_base_url": "https://other.example.org/v1"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["llm_api_key_set"] is False
    assert WeakSupervisionSettings.objects.get().llm_api_key_sealed == ""
    # and the operator's key goes only to the operator's endpoint
    settings.LLM_API_KEY = "sk-operator-global"
    assert llm_config(project=spam_project).api_key == ""
    client.patch(settings_url, {"llm_base_url": ""}, content_type="application/json")
    config = llm_config(project=spam_project)
    assert (config.api_key, config.api_key_source) == ("sk-operator-global", "global")


def test_a_key_bound_to_another_endpoint_is_not_sent(spam_project, settings):
    # the endpoint changed behind the service's back (an old row, a hand edit): the sealed key
    # names the endpoint it was given for, so it is not used for the new one
    settings.LLM_ALLOWED_BASE_URLS = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    ws_settings_update(
        project=spam_project, llm_base_url="http://127.0.0.1:8001/v1", llm_api_key="sk-p"
    )
    WeakSupervisionSettings.objects.update(llm_base_url="http://127.0.0.1:8002/v1")
    assert llm_config(project=spam_project).api_key == ""


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


def test_admin_settings_inline_hides_the_key_and_lf_admin_validates(
    admin_client, spam_project, settings
):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    ws_settings_update(project=spam_project, llm_api_key="sk-admin-secret")
    html = admin_client.get(
        reverse("admin:labeling_project_change", args=[spam_project.pk])
    ).content.decode()
    assert "pre-label settings" in html.lower()
    assert "sk-admin-secret" not in html
    assert "A key is stored" in html
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


def _admin_post_data(response) -> dict:
    """The change form's current values, as the browser would post them back."""
    from django import forms

    data = {}
    all_forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        all_forms.extend(formset.forms)
    for form in all_forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field, forms.BooleanField):
                if value:
                    data[form.add_prefix(name)] = "on"
            elif value is not None:
                data[form.add_prefix(name)] = value
    return data


def test_admin_refuses_an_endpoint_the_operator_does_not_allow_and_saves_through_the_service(
    admin_client, spam_project, settings
):
    settings.LLM_ALLOWED_BASE_URLS = ["http://127.0.0.1:8001/v1"]
    ws_settings_for(project=spam_project)
    change = reverse("admin:labeling_project_change", args=[spam_project.pk])
    data = _admin_post_data(admin_client.get(change))
    prefix = next(k for k in data if k.endswith("-llm_base_url")).rsplit("-", 1)[0]
    before = _raw_settings_row(spam_project)

    response = admin_client.post(
        change,
        {
            **data,
            f"{prefix}-llm_base_url": "http://127.0.0.1:5432",
            f"{prefix}-llm_api_key": "sk-admin-typed",
        },
    )
    assert response.status_code == 200  # the form again, with the error on the field
    (inline_form,) = [
        form
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is WeakSupervisionSettings
        for form in inline.formset.forms
    ]
    assert "not one the operator allows" in " ".join(inline_form.errors["llm_base_url"])
    assert _raw_settings_row(spam_project) == before

    response = admin_client.post(
        change,
        {
            **data,
            f"{prefix}-llm_base_url": "http://127.0.0.1:8001/v1/",
            f"{prefix}-llm_api_key": "sk-admin-typed",
        },
    )
    assert response.status_code == 302
    raw = _raw_settings_row(spam_project)
    assert raw["llm_base_url"] == "http://127.0.0.1:8001/v1"
    assert "sk-admin-typed" not in repr(raw)
    assert llm_config(project=spam_project).api_key == "sk-admin-typed"
    html = admin_client.get(change).content.decode()
    assert "sk-admin-typed" not in html
