"""Every bad input gets a 4xx, never a 500 or a hang (issue 16, requirement 8): ids beyond 64
bits, JSON nested too deeply, oversized CSV cells, too many columns, an unclosed quote, an upload
over the cap. Runs on SQLite and on PostgreSQL (DATABASE_URL=postgres://...)."""

import io
import json

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.api.fastpath import AnnotationLoopFastPath
from labeling.models import Annotation
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db

HUGE = 99999999999999999999  # 20 digits: beyond a 64-bit integer
DEEP = 100_000


@pytest.fixture
def api(annotator):
    client = APIClient()
    client.force_authenticate(annotator)
    return client


# ---- ids beyond 64 bits -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/api/projects/{HUGE}/",
        f"/api/projects/{HUGE}/items/",
        f"/api/projects/{HUGE}/progress/",
        f"/api/jobs/{HUGE}/",
        f"/api/annotations/{HUGE}/",
        "/api/projects/9223372036854775808/",  # 2**63: 19 digits, one too many
    ],
)
def test_ids_beyond_64_bits_in_api_urls_are_not_found(api, path):
    response = api.get(path)

    assert response.status_code == 404


def test_ids_beyond_64_bits_in_page_urls_are_not_found(client, annotator):
    client.force_login(annotator)

    for path in (f"/projects/{HUGE}/", f"/projects/{HUGE}/quality/", f"/projects/{HUGE}/model/"):
        assert client.get(path).status_code == 404, path


def test_submit_with_ids_beyond_64_bits_is_refused(api, project):
    item = ItemFactory(project=project)

    huge_item = api.post(
        f"/api/projects/{project.pk}/items/{HUGE}/submit/", {"labels": ["pos"]}, format="json"
    )
    huge_suggestion = api.post(
        f"/api/projects/{project.pk}/items/{item.pk}/submit/",
        {"labels": ["pos"], "suggestion_id": HUGE},
        format="json",
    )
    huge_exclude = api.post(
        f"/api/projects/{project.pk}/next/", {"exclude": [item.pk, HUGE]}, format="json"
    )
    huge_filter = api.get(f"/api/projects/{project.pk}/annotations/?item={HUGE}")

    assert huge_item.status_code == 404
    assert huge_suggestion.status_code == 400
    assert "suggestion_id" in huge_suggestion.json()
    assert huge_exclude.status_code == 400
    assert "exclude" in huge_exclude.json()
    assert huge_filter.status_code == 400
    assert "item" in huge_filter.json()
    assert not Annotation.objects.exists()


@pytest.fixture
def fast(annotator):
    """The annotation loop's fast path in front of Django, keeping the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield AnnotationLoopFastPath(WSGIHandler()), Token.objects.create(user=annotator).key
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def wsgi_post(app, path, body: bytes, token: str) -> tuple[int, bytes]:
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Token {token}",
    }
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    result = app(env, start_response)
    content = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return int(seen["status"].split()[0]), content


def test_the_fast_path_refuses_ids_beyond_64_bits(fast, project):
    app, token = fast
    item = ItemFactory(project=project)
    submit = json.dumps({"labels": ["pos"]}).encode()

    cases = [
        (f"/api/projects/{HUGE}/next/", b"{}", 404),
        ("/api/projects/9223372036854775808/next/", b"{}", 404),
        (f"/api/projects/{project.pk}/items/{HUGE}/submit/", submit, 404),
        (f"/api/projects/{project.pk}/items/9223372036854775808/submit/", submit, 404),
        (f"/api/projects/{project.pk}/next/", json.dumps({"exclude": [HUGE]}).encode(), 400),
        (
            f"/api/projects/{project.pk}/items/{item.pk}/submit/",
            json.dumps({"labels": ["pos"], "suggestion_id": -HUGE}).encode(),
            400,
        ),
    ]
    for path, body, expected in cases:
        status, content = wsgi_post(app, path, body, token)
        assert status == expected, (path, body, content[:200])
    assert not Annotation.objects.exists()


# ---- JSON nested too deeply ---------------------------------------------------------------


def test_request_bodies_nested_too_deeply_are_refused(fast, project):
    app, token = fast
    ItemFactory(project=project)
    deep = b'{"exclude": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    small_deep = b"[" * 30_000 + b"]" * 30_000  # under the fast path's 64 KiB: parsed there

    for path in (f"/api/projects/{project.pk}/next/", f"/api/projects/{project.pk}/"):
        for body in (deep, small_deep):
            status, content = wsgi_post(app, path, body, token)
            assert 400 <= status < 500, (path, len(body), content[:200])
