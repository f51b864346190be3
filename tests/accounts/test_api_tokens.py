"""API tokens: only a hash is stored, the secret is shown once, tokens expire and are revoked
from the user's page or the admin, and a revoked or expired token is refused at once."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create
from accounts.token_secrets import secret_hash
from tests.factories import UserFactory, api_token

pytestmark = pytest.mark.django_db

PASSWORD = "pw-secret-123"


def bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def _database_text() -> str:
    """Every row of every table, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_the_database_holds_a_hash_and_never_the_secret(project, annotator):
    # Given a token obtained from the endpoint
    response = APIClient().post(
        reverse("api:token"), {"username": "ann", "password": PASSWORD, "name": "ci"}, format="json"
    )
    secret = response.json()["token"]

    # Then it works, and no row of any table contains its secret
    assert response.status_code == 201
    assert len(secret) >= 43  # 32 random bytes
    assert bearer(secret).get(reverse("api:project-list")).status_code == 200
    token = ApiToken.objects.get()
    assert (token.key_hash, token.prefix, token.name) == (secret_hash(secret), secret[:8], "ci")
    assert secret not in _database_text()


def test_each_call_of_the_endpoint_makes_a_new_token(annotator):
    data = {"username": "ann", "password": PASSWORD, "expires_in_days": 30}
    first = APIClient().post(reverse("api:token"), data, format="json").json()
    second = APIClient().post(reverse("api:token"), data, format="json").json()

    assert first["token"] != second["token"]
    assert ApiToken.objects.filter(user=annotator).count() == 2
    expires = ApiToken.objects.get(pk=first["id"]).expires_at
    assert timedelta(days=29) < expires - timezone.now() <= timedelta(days=30)


@pytest.mark.parametrize("days", [0, -1, 3651, "soon"])
def test_a_bad_expiry_is_a_400_naming_the_field(annotator, days):
    data = {"username": "ann", "password": PASSWORD, "expires_in_days": days}
    response = APIClient().post(reverse("api:token"), data, format="json")

    assert response.status_code == 400
    assert "expires_in_days" in response.json()
    assert not ApiToken.objects.exists()


def test_an_expired_token_is_refused(project, annotator):
    secret = api_token(annotator, expires_at=timezone.now() + timedelta(hours=1))
    assert bearer(secret).get(reverse("api:project-list")).status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = bearer(secret).get(reverse("api:project-list"))
    on_a_project = bearer(secret).post(reverse("api:item-next", kwargs={"pid": project.pk}), {})

    assert (response.status_code, on_a_project.status_code) == (401, 401)
    assert response.json()["detail"] == "Token has expired."


def test_a_token_cannot_be_made_already_expired(annotator):
    from labeling.errors import ApplicationError

    with pytest.raises(ApplicationError, match="future"):
        api_token_create(user=annotator, expires_at=timezone.now())


def test_a_user_holds_a_bounded_number_of_tokens(annotator, settings):
    settings.API_TOKENS_PER_USER = 2
    data = {"username": "ann", "password": PASSWORD}
    codes = [
        APIClient().post(reverse("api:token"), data, format="json").status_code for _ in range(3)
    ]

    assert codes == [201, 201, 400]
    assert ApiToken.objects.count() == 2


# --- the user's page ---------------------------------------------------------------------------


def test_the_page_needs_a_login(client):
    response = client.get(reverse("accounts:api_tokens"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_secret_is_shown_once_on_the_page(client, project, annotator):
    # Given a user on their tokens page (linked from the navigation)
    client.force_login(annotator)
    nav = client.get(reverse("labeling:project_list")).content.decode()
    assert reverse("accounts:api_tokens") in nav

    # When they create a token
    created = client.post(reverse("accounts:api_tokens"), {"name": "laptop"})

    # Then the answer shows its secret, which works; later views show only its prefix
    token = ApiToken.objects.get()
    html = created.content.decode()
    secret = html.split('id="new-token-secret" readonly value="')[1].split('"')[0]
    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    assert secret_hash(secret) == token.key_hash
    assert bearer(secret).get(reverse("api:project-list")).status_code == 200
    later = client.get(reverse("accounts:api_tokens")).content.decode()
    assert secret not in later
    assert f"{token.prefix}…" in later
    assert "laptop" in later


@pytest.mark.parametrize("days", ["0", "3651", "soon"])
def test_a_bad_expiry_on_the_page_is_a_400_naming_the_field(client, annotator, days):
    client.force_login(annotator)

    response = client.post(reverse("accounts:api_tokens"), {"expires_in_days": days})

    assert response.status_code == 400
    assert "expires_in_days" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoked_from_the_page_the_token_stops_working(client, project, annotator):
    secret = api_token(annotator, name="old")
    token = ApiToken.objects.get()
    client.force_login(annotator)

    response = client.post(reverse("accounts:api_token_revoke", kwargs={"token_id": token.pk}))

    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    assert bearer(secret).get(reverse("api:project-list")).status_code == 401


def test_nobody_revokes_someone_else_s_token(client, annotator):
    api_token(annotator)
    client.force_login(UserFactory(username="mallory"))

    token = ApiToken.objects.get()
    response = client.post(reverse("accounts:api_token_revoke", kwargs={"token_id": token.pk}))

    assert response.status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()
    assert token.prefix not in client.get(reverse("accounts:api_tokens")).content.decode()


# --- the admin ---------------------------------------------------------------------------------


def test_the_admin_lists_tokens_without_secrets_and_revokes_them(client, annotator):
    # Given a token, and a superuser in the admin
    secret = api_token(annotator, name="script")
    token = ApiToken.objects.get()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    changelist = reverse("admin:accounts_apitoken_changelist")

    # When they list and open it, then revoke it
    listing = client.get(changelist).content.decode()
    detail = client.get(reverse("admin:accounts_apitoken_change", args=[token.pk]))
    revoked = client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})

    # Then the list shows whose token it is but not its secret (nor its hash), and it is gone
    assert "script" in listing
    assert token.prefix in listing
    assert secret not in listing + detail.content.decode()
    assert token.key_hash not in listing + detail.content.decode()
    assert client.get(reverse("admin:accounts_apitoken_add")).status_code == 403
    assert revoked.status_code == 302
    assert not ApiToken.objects.exists()
    assert bearer(secret).get(reverse("api:project-list")).status_code == 401


def test_the_page_says_when_the_user_holds_too_many_tokens(client, annotator, settings):
    settings.API_TOKENS_PER_USER = 1
    api_token(annotator)
    client.force_login(annotator)

    response = client.post(reverse("accounts:api_tokens"), {"name": "one more"})

    assert response.status_code == 400
    assert "revoke one first" in response.content.decode()
    assert ApiToken.objects.count() == 1
