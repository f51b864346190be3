"""Logins are throttled per account and per client address on every way in (the login page,
the admin's login, the API's token endpoint): after AXES_FAILURE_LIMIT failures the next
attempt gets a 429 with a clear message, the right password included, until the lockout ends or
an operator lifts it. These run against the configured limit, not a test value."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-secret-123"  # UserFactory's
ENTRANCES = ["page", "admin", "token"]


@pytest.fixture
def victim(db):
    return UserFactory(username="victim", is_staff=True)  # staff: may log into the admin


def attempt(entrance, username, password, address, **headers):
    data = {"username": username, "password": password}
    if entrance == "page":
        return APIClient().post(reverse("login"), data, REMOTE_ADDR=address, **headers)
    if entrance == "admin":
        data["next"] = reverse("admin:index")
        return APIClient().post(reverse("admin:login"), data, REMOTE_ADDR=address, **headers)
    return APIClient().post(
        reverse("api:token"), data, format="json", REMOTE_ADDR=address, **headers
    )


def succeeded(entrance, response) -> bool:
    return response.status_code == (201 if entrance == "token" else 302)


def assert_locked_out(entrance, response):
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    if entrance == "token":
        assert response["Content-Type"] == "application/json"
        assert "Too many failed logins" in response.json()["detail"]
    else:
        assert response["Content-Type"].startswith("text/html")
        assert "<h1>Too many failed logins</h1>" in response.content.decode()


@pytest.mark.parametrize("entrance", ENTRANCES)
def test_failures_for_one_account_lock_it_from_every_address(entrance, victim):
    # Given the limit of wrong passwords for one account, each from a different address: the
    # last of them already gets the lockout
    for n in range(settings.AXES_FAILURE_LIMIT):
        response = attempt(entrance, "victim", "wrong", f"198.51.100.{n + 1}")
        assert not succeeded(entrance, response)
        refused = 200 if entrance != "token" else 400  # the form again / a validation error
        last = n == settings.AXES_FAILURE_LIMIT - 1
        assert response.status_code == (429 if last else refused)

    # When the right password comes from yet another address
    response = attempt(entrance, "victim", PASSWORD, "192.0.2.200")

    # Then it is refused with a 429 (and no session, no token)
    assert_locked_out(entrance, response)
    assert "sessionid" not in response.cookies
    assert not ApiToken.objects.exists()
    # ... while another account from that address still logs in
    UserFactory(username="bystander", is_staff=True)
    assert succeeded(entrance, attempt(entrance, "bystander", PASSWORD, "192.0.2.200"))


@pytest.mark.parametrize("entrance", ENTRANCES)
def test_failures_from_one_address_lock_it_for_every_account(entrance, victim):
    # Given the limit of failures from one address, each for another username and each with a
    # forged X-Forwarded-For (the peer is no trusted proxy, so the header is not believed)
    for n in range(settings.AXES_FAILURE_LIMIT):
        response = attempt(
            entrance, f"guess{n}", "wrong", "203.0.113.5", HTTP_X_FORWARDED_FOR=f"10.1.1.{n}"
        )
        assert (response.status_code == 429) == (n == settings.AXES_FAILURE_LIMIT - 1)

    # When an account that never failed logs in from there, and from elsewhere
    there = attempt(entrance, "victim", PASSWORD, "203.0.113.5")
    elsewhere = attempt(entrance, "victim", PASSWORD, "203.0.113.6")

    # Then only the address is locked out
    assert_locked_out(entrance, there)
    assert succeeded(entrance, elsewhere)


def test_below_the_limit_the_right_password_still_works(victim):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt("page", "victim", "wrong", f"198.51.100.{n + 1}")

    assert succeeded("page", attempt("page", "victim", PASSWORD, "192.0.2.1"))


def _lock_out_victim(entrance="page"):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(entrance, "victim", "wrong", "198.51.100.1")
    assert attempt(entrance, "victim", PASSWORD, "198.51.100.1").status_code == 429


@pytest.mark.parametrize("command", ["axes_reset_username", "axes_reset_ip", "axes_reset"])
def test_an_operator_lifts_a_lockout_with_a_command(victim, command):
    _lock_out_victim()

    args = {"axes_reset_username": ["victim"], "axes_reset_ip": ["198.51.100.1"]}
    call_command(command, *args.get(command, []))

    if command == "axes_reset_username":
        # The account is free again; the address's own count was reset with the same rows.
        assert succeeded("page", attempt("page", "victim", PASSWORD, "192.0.2.7"))
    assert succeeded("page", attempt("page", "victim", PASSWORD, "198.51.100.1"))


def test_an_operator_lifts_a_lockout_in_the_admin(victim):
    # Given a locked-out account, and a superuser in the admin
    _lock_out_victim("token")
    admin = APIClient()
    admin.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    changelist = reverse("admin:axes_accessattempt_changelist")
    assert "victim" in admin.get(changelist).content.decode()

    # When they delete the access attempts
    response = admin.post(
        changelist,
        {
            "action": "delete_selected",
            "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )

    # Then the account logs in again
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert succeeded("token", attempt("token", "victim", PASSWORD, "198.51.100.1"))


def test_behind_a_trusted_proxy_each_client_address_is_counted_apart(victim, settings):
    # Given a proxy at 10.0.0.9 that appends the client's address to X-Forwarded-For
    settings.TRUSTED_PROXIES = ["10.0.0.9"]
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt("page", f"guess{n}", "wrong", "10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.5")

    # When the guessing client and another one log in through the same proxy
    guesser = attempt("page", "victim", PASSWORD, "10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.5")
    other = attempt("page", "victim", PASSWORD, "10.0.0.9", HTTP_X_FORWARDED_FOR="192.0.2.44")

    # Then only the guessing client is locked out, not everyone behind the proxy
    assert guesser.status_code == 429
    assert succeeded("page", other)
