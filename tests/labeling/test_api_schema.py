"""The OpenAPI schema is complete and valid, and the docs page works offline (no CDN)."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Every operation of the REST API contract (docs/HELPERS.md), as (method, path).
CONTRACT = {
    ("post", "/api/auth/token/"),
    ("get", "/api/projects/"),
    ("get", "/api/projects/{pid}/"),
    ("get", "/api/projects/{pid}/progress/"),
    ("get", "/api/projects/{pid}/items/"),
    ("get", "/api/projects/{pid}/items/{iid}/"),
    ("post", "/api/projects/{pid}/next/"),
    ("post", "/api/projects/{pid}/items/{iid}/submit/"),
    ("post", "/api/projects/{pid}/items/{iid}/skip/"),
    ("get", "/api/projects/{pid}/annotations/"),
    ("patch", "/api/annotations/{aid}/"),
    ("post", "/api/annotations/{aid}/retract/"),
    ("post", "/api/projects/{pid}/imports/"),
    ("get", "/api/jobs/{jid}/"),
    ("get", "/api/projects/{pid}/jobs/"),
    ("get", "/api/projects/{pid}/export/"),
}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def schema_file(tmp_path, capsys):
    """Generate the schema the way CI would: validated, and failing on any warning."""
    GENERATOR_STATS.reset()  # warnings from earlier generations in this process don't count
    path = tmp_path / "schema.yaml"
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    except Exception as exc:  # show what spectacular complained about
        pytest.fail(f"schema generation failed: {exc}\n{capsys.readouterr().err}")
    return path


def test_schema_generates_without_warnings_and_validates(schema_file):
    schema = yaml.safe_load(schema_file.read_text())

    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Flywheel API"


def test_schema_covers_every_contract_operation_with_typed_responses(schema_file):
    schema = yaml.safe_load(schema_file.read_text())

    operations = {
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert operations >= CONTRACT
    for method, path in CONTRACT:
        responses = schema["paths"][path][method]["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, f"{method} {path} documents no success response"


def test_schema_documents_both_auth_schemes(schema_file):
    schema = yaml.safe_load(schema_file.read_text())

    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_docs_page_renders_from_local_assets_only(db):
    # Given a logged-in user
    client = APIClient()
    client.force_login(UserFactory(username="reader"))

    # When they open the docs
    response = client.get("/api/docs/")

    # Then the page comes up, refers to no remote URL, and its assets are files we ship
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"https?://", html), re.findall(r"https?://\S+", html)
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert finders.find(asset), f"{asset} is not a static file we ship"


def test_schema_endpoint_serves_json_to_logged_in_users(db):
    client = APIClient()
    client.force_login(UserFactory(username="reader"))

    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert "/api/projects/{pid}/next/" in response.json()["paths"]


def test_docs_need_a_login(db):
    assert APIClient().get("/api/docs/").status_code in (401, 403)
