"""The API tokens page in a real headless Chromium: reached from the navigation, a token is
created and its secret shown once, it works against the API, and revoking it stops it; a
locked-out login shows the 429 page."""

import re
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from accounts.lockout import lockout_message
from accounts.models import ApiToken
from tests.browser import BROWSER_MARKS, expect, login
from tests.factories import UserFactory

pytestmark = BROWSER_MARKS


def _api_status(base: str, secret: str) -> int:
    request = urllib.request.Request(
        f"{base}/api/projects/", headers={"Authorization": f"Token {secret}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
def test_create_use_and_revoke_a_token(live_server, page):
    # Given a logged-in user
    UserFactory(username="scripter")
    login(page, live_server.url, "scripter")

    # When they open API tokens from the navigation and create one that expires in 30 days
    page.get_by_role("link", name="API tokens").click()
    expect(page).to_have_url(re.compile(r"/accounts/tokens/$"))
    page.fill("input[name=name]", "nightly export")
    page.fill("input[name=expires_in_days]", "30")
    page.get_by_role("button", name="Create token").click()

    # Then its secret is shown once, and it works
    secret = page.locator("#new-token-secret").input_value()
    assert len(secret) >= 43
    assert _api_status(live_server.url, secret) == 200
    row = page.locator("table.report tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("nightly export")
    page.goto(f"{live_server.url}/accounts/tokens/")
    expect(page.locator("table.report tbody tr")).to_have_count(1)
    expect(page.locator("#new-token-secret")).to_have_count(0)
    assert secret not in page.content()

    # When they revoke it
    page.get_by_role("button", name="Revoke").click()

    # Then it is gone and refused
    expect(page.locator(".messages")).to_contain_text("revoked")
    expect(page.locator("table.report")).to_have_count(0)
    assert _api_status(live_server.url, secret) == 401
    assert not ApiToken.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_locked_out_login_shows_the_429_page(live_server, page):
    UserFactory(username="forgetful")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "forgetful")
        page.fill("input[name=password]", "not-the-password")
        with page.expect_navigation():
            page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("Too many failed logins")
    expect(page.locator(".notice")).to_have_text(lockout_message())
