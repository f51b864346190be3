"""Every page works under a Content-Security-Policy without 'unsafe-inline': no inline script,
no inline event handler, no style attribute or element, on any route of the site (walked as
tests/labeling/test_annotator_sees_nothing walks it, here as a manager of everything) and the
admin's main pages; and every response carries the policy. One exception: DRF's HTML view of
the API has inline styles in its own templates, so its pages (only) allow inline styles."""

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from labeling.api.renderers import BrowsableAPIRenderer
from tests.factories import UserFactory
from tests.labeling.test_annotator_sees_nothing import (  # noqa: F401 (fixtures)
    _hashing_embedder,
    _routes,
    world,
)
from tests.models_app.flywheel import no_broker  # noqa: F401

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    ("admin:index", {}),
    ("admin:labeling_project_changelist", {}),
    ("admin:labeling_project_add", {}),
    ("admin:labeling_project_change", {"object_id": "pid"}),
    ("admin:labeling_job_changelist", {}),
    ("admin:auth_user_changelist", {}),
]
# Not HTML pages, or not ours to render (the schema is YAML).
SKIPPED = {"api-schema"}


class InlineFinder(HTMLParser):
    """What a policy of script-src 'self' and style-src 'self' would block."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
        if "style" in attrs:
            self.found.append(f"<{tag} style=...>")
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in attrs:
            # A data block (json_script) is never executed, so the policy lets it be.
            self._in_script = attrs.get("type") not in ("application/json", "application/ld+json")
        if tag == "a" and (attrs.get("href") or "").strip().lower().startswith("javascript:"):
            self.found.append("<a href=javascript:...>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append(f"<script>{data.strip()[:60]}")


def _inline(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


def test_the_finder_sees_each_kind_of_inline_code():
    html = (
        '<script>alert(1)</script><script type="application/json">{}</script>'
        '<button onclick="x()">b</button><p style="color: red">p</p><style>p{}</style>'
        '<script src="/static/a.js"></script>'
    )
    assert _inline(html) == [
        "<script>alert(1)",
        "<button onclick=...>",
        "<p style=...>",
        "<style>",
    ]


def _urls(ids: dict) -> list[str]:
    fill = {
        "pid": ids["pid"],
        "project_id": ids["pid"],
        "iid": ids["gold"],
        "item_id": ids["gold"],
        "aid": ids["aid"],
        "jid": ids["jid"],
        "lfid": 1,
        "rid": 1,
        "number": 1,
    }
    urls = []
    for name, pattern in _routes():
        if name is None or name in SKIPPED:
            continue
        # Ids this world does not hold (a token, a cascade run) give a 404 page: checked too.
        kwargs = {k: fill.get(k, 1) for k in re.findall(r"<(?:\w+:)?(\w+)>", pattern)}
        urls.append(reverse(name, kwargs=kwargs))
    for name, kwargs in ADMIN_PAGES:
        urls.append(reverse(name, kwargs={k: fill[v] for k, v in kwargs.items()}))
    return urls


def test_no_page_needs_inline_script_or_style(client, world):  # noqa: F811
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    pages = 0
    for url in _urls(world["ids"]):
        response = client.get(url, HTTP_ACCEPT="text/html")
        policy = response.get("Content-Security-Policy", "").split("; ")
        assert "script-src 'self'" in policy, url
        drf_page = isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer)
        styles = ("style-src 'self' 'unsafe-inline'",) if drf_page else ()
        assert [d for d in policy if "unsafe-inline" in d] == list(styles), url
        if response.get("Content-Type", "").startswith("text/html") and response.content:
            pages += 1
            found = _inline(response.content.decode())
            if drf_page:
                found = [f for f in found if f == "<style>" or not f.endswith("style=...>")]
                found = [f for f in found if f != "<style>"]
            assert found == [], url
    assert pages >= 20  # the walk reached the site's pages, not only refusals
