"""What the browser tests share: Debian's Chromium driven by Playwright, headless.

Loaded as a plugin by `tests/conftest.py`, so the `browser` and `page` fixtures are available
to every test; a module sets `pytestmark = BROWSER_MARKS`. `page` fails the test on any
JavaScript error the page raised and on anything the Content-Security-Policy blocked.
Screenshots go to `SCREENSHOTS` ($FLYWHEEL_SCREENSHOTS, /tmp). Chromium's background
networking is switched off: this machine's closed network refuses those connections, and the
tests must not depend on them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run from a
# thread with a running loop unless told that this is intended (the fixtures do run here).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "pw-secret-123"  # tests.factories.UserFactory's
SCREENSHOTS = Path(os.environ.get("FLYWHEEL_SCREENSHOTS", "/tmp"))

BROWSER_MARKS = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"
    ),
]


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
            close_test_connections()


def new_page(browser, errors: list[str], *, width: int = 1280, height: int = 1000):
    """A page in a fresh context (its own cookies) that appends JavaScript errors to `errors`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Chromium reports what the Content-Security-Policy blocked (an inline script, handler or
    # style, a foreign source) on the console: an error like any other.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return page


@pytest.fixture
def page(browser):
    errors: list[str] = []
    page = new_page(browser, errors)
    yield page
    page.context.close()
    close_test_connections()
    assert not errors, f"JavaScript errors on the page: {errors}"


def close_test_connections() -> None:
    """Close the database connections the test opened. Django keeps connections per context
    (asgiref's Local), and with Playwright's sync API (greenlets) the one the test body opened
    is not the one the session's teardown closes: it stayed open, and dropping the test
    database at the end of a PostgreSQL run failed ("is being accessed by other users")."""
    from django.db import connections

    connections.close_all()


def login(page, base: str, username: str, next_url: str | None = None) -> None:
    """Log in through the form; with `next_url`, end up there."""
    page.goto(f"{base}/accounts/login/" + (f"?next={next_url}" if next_url else ""))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    if next_url:
        expect(page).to_have_url(re.compile(re.escape(next_url) + "$"))
    else:
        expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
