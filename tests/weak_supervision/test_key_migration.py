"""The migration that seals stored per-project LLM keys (plaintext before it)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from weak_supervision.crypto import unseal

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("weak_supervision", "0001_initial")]
AFTER = [("weak_supervision", "0002_llm_api_key_sealed")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_plaintext_keys_are_sealed_for_the_endpoint_in_use(settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1/"
    try:
        old = _migrate(BEFORE)
        Project = old.get_model("labeling", "Project")
        Settings = old.get_model("weak_supervision", "WeakSupervisionSettings")
        own = Settings.objects.create(
            project=Project.objects.create(name="own"),
            llm_base_url="http://127.0.0.1:8001/v1",
            llm_api_key="sk-plain-own",
        )
        default = Settings.objects.create(
            project=Project.objects.create(name="default"), llm_api_key="sk-plain-default"
        )
        new = _migrate(AFTER)
        Settings = new.get_model("weak_supervision", "WeakSupervisionSettings")
        rows = {row.pk: row.llm_api_key_sealed for row in Settings.objects.all()}
        assert "sk-plain" not in repr(rows)
        assert unseal(rows[own.pk]).secret == "sk-plain-own"
        assert unseal(rows[own.pk]).endpoint == "http://127.0.0.1:8001/v1"
        assert unseal(rows[default.pk]).endpoint == "http://127.0.0.1:9/v1"
        # and back
        old = _migrate(BEFORE)
        Settings = old.get_model("weak_supervision", "WeakSupervisionSettings")
        assert Settings.objects.get(pk=own.pk).llm_api_key == "sk-plain-own"
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_field_encryption_keys_rotate_and_a_foreign_token_is_no_key(settings):
    from cryptography.fernet import Fernet

    from weak_supervision.crypto import seal

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old_key
    token = seal("sk-rotating", endpoint="http://127.0.0.1:9/v1")
    settings.FIELD_ENCRYPTION_KEY = f"{new_key},{old_key}"  # new first: old tokens still read
    assert unseal(token).secret == "sk-rotating"
    settings.FIELD_ENCRYPTION_KEY = new_key
    assert unseal(token) is None
    settings.FIELD_ENCRYPTION_KEY = ""  # derived from SECRET_KEY
    assert unseal(seal("sk-derived", endpoint="e")).secret == "sk-derived"
