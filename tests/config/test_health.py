"""GET /healthz: what load balancers and `docker compose` health checks call."""

import pytest
from django.db import connection
from django.db.utils import OperationalError


@pytest.mark.django_db
def test_healthz_answers_ok_without_login(client):
    # when an anonymous client asks for the health of the app
    response = client.get("/healthz")

    # then it is OK, as JSON, and never cached
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_reports_an_unreachable_database(client, monkeypatch):
    # given a database that refuses connections
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    # when the health is asked for
    response = client.get("/healthz")

    # then the app says it is unavailable, so the orchestrator can act
    assert response.status_code == 503
    assert response.json()["status"] == "error"


def test_healthz_accepts_only_get(client):
    # when something posts to it
    response = client.post("/healthz")

    # then it is refused
    assert response.status_code == 405
