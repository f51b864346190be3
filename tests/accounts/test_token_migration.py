"""The migration that hashes DRF authtoken keys: every existing token keeps working, and the
table that held them in clear is gone."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db

migration = importlib.import_module("accounts.migrations.0002_hash_authtoken_keys")
LEGACY_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # DRF's format: 40 hex characters


def _editor():
    def execute(sql):
        with connection.cursor() as cursor:
            cursor.execute(sql)

    return SimpleNamespace(
        connection=connection, quote_name=connection.ops.quote_name, execute=execute
    )


def test_legacy_tokens_are_hashed_and_the_plaintext_table_dropped(project, annotator):
    # Given DRF's token table with a token in clear
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY,"
            " created timestamp with time zone NOT NULL, user_id bigint NOT NULL)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY,"
            " created datetime NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [LEGACY_KEY, "2026-01-02 03:04:05", annotator.pk],
        )

    # When the migration runs
    migration.hash_legacy_tokens(apps, _editor())

    # Then the same secret still works, only its hash is stored, and the old table is gone
    token = ApiToken.objects.get()
    assert (token.user, token.prefix, token.created_at.year) == (annotator, LEGACY_KEY[:8], 2026)
    assert token.key_hash != LEGACY_KEY
    assert "authtoken_token" not in connection.introspection.table_names()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {LEGACY_KEY}")
    assert client.get(reverse("api:project-list")).status_code == 200


def test_nothing_to_do_on_a_new_database(annotator):
    migration.hash_legacy_tokens(apps, _editor())
    assert not ApiToken.objects.exists()
