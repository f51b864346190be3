"""Error pages (403, 404, 500) and the favicon: a user who lands on a page they cannot open
sees the site's layout with an explanation and a way back, not Django's bare text."""

import urllib.request

import pytest
from django.template.loader import render_to_string
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_forbidden_page_renders_the_styled_403_template(project, annotator):
    # Given an annotator, who may not open the pre-label dashboard
    client = Client()
    client.force_login(annotator)

    # When they open it
    response = client.get(f"/projects/{project.pk}/prelabels/")

    # Then they get the site's 403 page: the layout, the reason and a link back
    assert response.status_code == 403
    assert "403.html" in [t.name for t in response.templates]
    page = response.content.decode()
    assert 'class="site-header"' in page
    assert "You cannot open this page" in page
    assert "needs the reviewer role" in page  # the view's own reason
    assert 'href="/"' in page
    assert "Back to my projects" in page


def test_an_unknown_page_renders_the_styled_404_template(annotator):
    client = Client()
    client.force_login(annotator)

    response = client.get("/no/such/page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "This page does not exist" in page
    assert "/no/such/page/" in page
    assert 'class="site-header"' in page


def test_the_500_template_renders_without_a_request():
    # Django renders 500.html with an empty context: it must not need the request or a user.
    page = render_to_string("500.html", {})

    assert "Something went wrong on our side" in page
    assert "Back to my projects" in page


def test_the_favicon_is_linked_in_every_page_and_served(live_server, annotator):
    client = Client()
    client.force_login(annotator)

    page = client.get("/").content.decode()

    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in page
    with urllib.request.urlopen(f"{live_server.url}/static/img/favicon.svg") as response:
        body = response.read()
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("image/svg+xml")
    assert body.startswith(b"<svg")
