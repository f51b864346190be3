"""The annotation loop's fast path (labeling/api/fastpath.py) answers next/submit with a token
exactly as the DRF views do, and leaves every other request and every error to Django."""

import io
import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from accounts.token_secrets import secret_hash
from labeling.api import fastpath
from labeling.api.fastpath import AnnotationLoopFastPath, with_annotation_fast_path
from labeling.models import Annotation, Assignment, Membership
from labeling.services import db
from tests.factories import (
    AnnotationFactory,
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    api_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_test_transaction():
    """As Django's test client does: a real request would close the test's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


class Spy:
    """The wrapped Django application, counting the requests handed to it."""

    def __init__(self):
        self.app = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.app(environ, start_response)


@pytest.fixture
def apps():
    django = Spy()
    return AnnotationLoopFastPath(django), django


def environ(path, body=b"", *, token=None, content_type="application/json", **extra):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
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
        "CONTENT_TYPE": content_type,
    }
    if token:
        env["HTTP_AUTHORIZATION"] = f"Token {token}"
    env.update(extra)
    return env


def call(app, env):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()  # as a WSGI server does: Django sends request_finished here
    return int(seen["status"].split()[0]), dict(seen["headers"]), body


def next_path(project):
    return reverse("api:item-next", kwargs={"pid": project.pk})


def submit_path(project, item):
    return reverse("api:item-submit", kwargs={"pid": project.pk, "iid": item.pk})


@pytest.fixture
def token(annotator):
    return api_token(annotator)


def test_routes_are_the_urlconf_s():
    assert fastpath._NEXT.fullmatch(reverse("api:item-next", kwargs={"pid": 12}))
    submit = reverse("api:item-submit", kwargs={"pid": 12, "iid": 345})
    assert fastpath._SUBMIT.fullmatch(submit).groups() == ("12", "345")
    assert not fastpath._NEXT.fullmatch("/api/projects/\uff11\uff12/next/")  # ASCII digits only


def test_next_is_served_as_the_view_serves_it(apps, project, annotator, token):
    fast, django = apps
    ItemFactory(project=project, text="first <b>", priority=2)
    ItemFactory(project=project, text="second", priority=1)

    status, headers, body = call(fast, environ(next_path(project), {"exclude": []}, token=token))
    assert (status, django.calls) == (200, 0)
    served = json.loads(body)
    assert served["item"]["text"] == "first <b>"
    assert Assignment.objects.get(user=annotator).item_id == served["item"]["id"]

    # The same user asking the DRF view gets the same held item (its lease renewed).
    status2, headers2, body2 = call(
        django.app, environ(next_path(project), {"exclude": []}, token=token)
    )
    assert status2 == 200
    again = json.loads(body2)
    assert again["assignment"].pop("expires_at")
    assert served["assignment"].pop("expires_at")
    assert again == served
    for h in (headers, headers2):
        h.pop("Content-Length")
    assert headers == headers2
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_submit_is_served_as_the_view_serves_it(apps, project, annotator, token):
    fast, django = apps
    item = ItemFactory(project=project)
    call(fast, environ(next_path(project), {}, token=token))

    answer = {"labels": ["pos"], "time_spent_ms": 1200}
    status, headers, body = call(fast, environ(submit_path(project, item), answer, token=token))
    assert (status, django.calls) == (201, 0)
    saved = Annotation.objects.get(item=item, annotator=annotator)
    assert saved.labels == ["pos"]
    assert saved.time_spent_ms == 1200
    item.refresh_from_db()
    assert item.status == "done"
    assert item.final_labels == ["pos"]

    # Submitting again through the view edits the same annotation (time spent adds up).
    status2, headers2, body2 = call(
        django.app, environ(submit_path(project, item), answer, token=token)
    )
    assert status2 == 201
    first, second = json.loads(body), json.loads(body2)
    assert first.pop("updated_at")
    assert second.pop("updated_at")
    assert (first.pop("time_spent_ms"), second.pop("time_spent_ms")) == (1200, 2400)
    assert first == second
    assert first["id"] == saved.pk
    assert first["annotator"] == "ann"
    for h in (headers, headers2):
        h.pop("Content-Length")
    assert headers == headers2


def test_signals_bracket_each_served_request(apps, project, token):
    fast, django = apps
    ItemFactory(project=project)
    seen = []
    started = lambda **kw: seen.append("started")  # noqa: E731
    finished = lambda **kw: seen.append("finished")  # noqa: E731
    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, _, _ = call(fast, environ(next_path(project), {}, token=token))
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert (status, django.calls, seen) == (200, 0, ["started", "finished"])


def _other_project_member():
    other = ProjectFactory(labels=["a", "b"])
    user = UserFactory(username="outsider")
    MembershipFactory(project=other, user=user, role=Membership.Role.ANNOTATOR)
    return api_token(user)


@pytest.mark.parametrize(
    "case",
    [
        "no token",
        "unknown token",
        "expired token",
        "malformed header",
        "inactive user",
        "not a member",
        "unknown label",
        "two labels on a single-label project",
        "bad json",
        "NaN",
        "not an object",
        "item of another project",
        "unknown project",
    ],
)
def test_every_error_is_the_view_s_own(apps, project, annotator, token, case):
    fast, django = apps
    item = ItemFactory(project=project)
    foreign = ItemFactory(project=ProjectFactory(labels=["x"]))
    call(fast, environ(next_path(project), {}, token=token))  # hold the item's lease
    path, body, kwargs = submit_path(project, item), {"labels": ["pos"]}, {"token": token}
    if case == "no token":
        kwargs = {}
    elif case == "unknown token":
        kwargs = {"token": "0" * 40}
    elif case == "expired token":
        _tokens(token).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif case == "malformed header":
        kwargs = {"HTTP_AUTHORIZATION": f"Token {token} extra"}
    elif case == "inactive user":
        annotator.is_active = False
        annotator.save()
    elif case == "not a member":
        kwargs = {"token": _other_project_member()}
    elif case == "unknown label":
        body = {"labels": ["nope"]}
    elif case == "two labels on a single-label project":
        body = {"labels": ["pos", "neg"]}
    elif case == "bad json":
        body = b'{"labels": ['
    elif case == "NaN":
        body = b'{"labels": ["pos"], "time_spent_ms": NaN}'
    elif case == "not an object":
        body = ["pos"]
    elif case == "item of another project":
        path = reverse("api:item-submit", kwargs={"pid": project.pk, "iid": foreign.pk})
    elif case == "unknown project":
        path = reverse("api:item-submit", kwargs={"pid": 999999, "iid": item.pk})

    expected = call(django.app, environ(path, body, **kwargs))
    django.calls = 0
    got = call(fast, environ(path, body, **kwargs))
    assert django.calls == 1, "handed to Django"
    assert got[0] == expected[0]
    assert got[2] == expected[2]
    assert got[1] == expected[1]
    assert got[0] >= 400
    assert not Annotation.objects.filter(item=item).exclude(annotator=annotator).exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"labels=pos", "application/x-www-form-urlencoded"),
        ('{"labels": ["pos"]}'.encode("latin-1"), "application/json; charset=latin-1"),
        (b'{"labels": ["pos"]}' + b" " * 70_000, "application/json"),
    ],
)
def test_other_bodies_go_to_the_view(apps, project, annotator, token, body, content_type):
    fast, django = apps
    item = ItemFactory(project=project)
    call(fast, environ(next_path(project), {}, token=token))
    env = environ(submit_path(project, item), body, token=token, content_type=content_type)
    status, _, _ = call(fast, env)
    assert (status, django.calls) == (201, 1)
    assert Annotation.objects.get(item=item).labels == ["pos"]


def test_conflict_and_empty_queue_are_the_view_s(apps, project, annotator, token):
    fast, django = apps
    item = ItemFactory(project=project)
    call(fast, environ(next_path(project), {}, token=token))
    # The lease expired and someone else completed the item: the view's 409, nothing written.
    Assignment.objects.filter(user=annotator).update(expires_at=timezone.now() - timedelta(1))
    AnnotationFactory(item=item, project=project)
    item.annotation_count = 1
    item.status = "done"
    item.save()
    status, _, body = call(
        fast, environ(submit_path(project, item), {"labels": ["pos"]}, token=token)
    )
    assert (status, django.calls) == (409, 1)
    assert not Annotation.objects.filter(annotator=annotator).exists()
    # Nothing left: the view's 204.
    status, _, body = call(fast, environ(next_path(project), {}, token=token))
    assert (status, body, django.calls) == (204, b"", 2)


def test_an_error_after_the_commit_is_not_run_again(apps, project, annotator, token, monkeypatch):
    """A failure after the submit committed (say, an after-commit hook) is a 500, not a second
    submit through the view."""
    fast, django = apps
    item = ItemFactory(project=project)
    call(fast, environ(next_path(project), {}, token=token))
    submit = fastpath.annotation_submit

    def submit_then_fail(**kwargs):
        submit(**kwargs)
        raise RuntimeError("broker down")

    monkeypatch.setattr(fastpath, "annotation_submit", submit_then_fail)
    answer = {"labels": ["pos"], "time_spent_ms": 900}
    with pytest.raises(RuntimeError):
        call(fast, environ(submit_path(project, item), answer, token=token))
    assert django.calls == 0
    saved = Annotation.objects.get(item=item, annotator=annotator)
    assert saved.time_spent_ms == 900  # submitted once, not edited by a second run


def test_host_and_https_rules_are_kept(apps, project, token, settings):
    fast, django = apps
    ItemFactory(project=project)
    status, _, _ = call(
        fast, environ(next_path(project), {}, token=token, HTTP_HOST="evil.example")
    )
    assert (status, django.calls) == (400, 1)

    settings.DISALLOWED_USER_AGENTS = [re.compile("BadBot")]
    status, _, _ = call(
        fast, environ(next_path(project), {}, token=token, HTTP_USER_AGENT="BadBot")
    )
    assert (status, django.calls) == (403, 2)
    settings.DISALLOWED_USER_AGENTS = []

    settings.SECURE_SSL_REDIRECT = True
    fast, django = AnnotationLoopFastPath(Spy()), None
    status, headers, _ = call(fast, environ(next_path(project), {}, token=token))
    assert (status, fast.app.calls) == (301, 1)
    assert headers["Location"].startswith("https://")

    settings.SECURE_HSTS_SECONDS = 3600
    fast = AnnotationLoopFastPath(Spy())
    status, headers, _ = call(
        fast, environ(next_path(project), {}, token=token, **{"wsgi.url_scheme": "https"})
    )
    assert (status, fast.app.calls) == (200, 0)
    assert headers["Strict-Transport-Security"] == "max-age=3600"


def test_forwarded_https_is_believed_from_a_trusted_proxy_only(project, token, settings):
    # Given HTTPS redirects on, behind a proxy at 10.0.0.9
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.TRUSTED_PROXIES = ["10.0.0.9"]
    ItemFactory(project=project)
    ItemFactory(project=project)

    # When a client claims HTTPS itself, and when the proxy says so
    def next_from(remote_addr):
        fast = AnnotationLoopFastPath(Spy())
        env = environ(
            next_path(project), {}, token=token,
            REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_PROTO="https",
        )  # fmt: skip
        status, headers, _ = call(fast, env)
        return status, fast.app.calls, headers

    direct, proxied = next_from("198.51.100.7"), next_from("10.0.0.9")

    # Then only the proxy's word counts: the direct client is sent to https:// by Django
    assert direct[:2] == (301, 1)
    assert proxied[:2] == (200, 0)
    assert "script-src 'self'" in proxied[2]["Content-Security-Policy"].split("; ")


def test_wrapped_only_with_known_middleware(settings):
    app = Spy()
    assert isinstance(with_annotation_fast_path(app), AnnotationLoopFastPath)
    settings.API_FAST_PATH = False
    assert with_annotation_fast_path(app) is app
    settings.API_FAST_PATH = True
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "somewhere.NewMiddleware"]
    assert with_annotation_fast_path(app) is app


def test_the_configured_middleware_has_been_reviewed_for_the_fast_path():
    """A middleware added to settings turns the fast path off silently (safe, but slow):
    decide in labeling/api/fastpath.py whether it applies to these requests or is inert."""
    known = set(fastpath.APPLIED_MIDDLEWARE) | set(fastpath.INERT_MIDDLEWARE)
    assert set(settings.MIDDLEWARE) <= known


# ---- the credential cache (labeling/api/credentials.py) -------------------------------------
# A request answered from credentials read earlier runs one statement, and any change to the
# token, the user, the membership or the project since then is seen by that very request,
# which then writes nothing and is answered by Django as without the cache.


@pytest.fixture
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the credential cache is PostgreSQL's: set DATABASE_URL=postgres://...")


def _next(fast, project, key, exclude=()):
    env = environ(next_path(project), {"exclude": list(exclude)}, token=key)
    status, _, body = call(fast, env)
    return status, (json.loads(body) if body else None)


@pytest.mark.usefixtures("postgresql_only")
def test_a_later_request_is_one_statement(apps, project, annotator, token):
    fast, django = apps
    first, second = ItemFactory(project=project, priority=2), ItemFactory(project=project)
    with CaptureQueriesContext(connection) as read:
        status, served = _next(fast, project, token)
    assert (status, served["item"]["id"]) == (200, first.pk)
    assert len(read) == 2  # credentials, then the queue
    with CaptureQueriesContext(connection) as cached:
        status, served = _next(fast, project, token, exclude=[first.pk])
    assert (status, served["item"]["id"], django.calls) == (200, second.pk, 0)
    assert len(cached) == 1
    assert "md5(" in cached[0]["sql"]  # the guard rides along
    # The token is known by its hash, to the database and to the cache: the secret is in neither.
    assert secret_hash(token) in cached[0]["sql"]
    assert token not in read[0]["sql"] + cached[0]["sql"]
    assert all(token not in key for key, _ in fast.credentials._entries)


def _tokens(key):
    return ApiToken.objects.filter(key_hash=secret_hash(key))


def _revoke(case, *, annotator, project, key):
    if case == "token deleted":
        _tokens(key).delete()
    elif case == "token expired":
        _tokens(key).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif case == "user deactivated":
        annotator.is_active = False
        annotator.save()
    elif case == "membership removed":
        Membership.objects.filter(user=annotator, project=project).delete()
    elif case == "token given to another user":
        _tokens(key).update(user=UserFactory(username="other"))


REVOCATIONS = [
    "token deleted",
    "token expired",
    "user deactivated",
    "membership removed",
    "token given to another user",
]


@pytest.mark.usefixtures("postgresql_only")
@pytest.mark.parametrize("case", REVOCATIONS)
def test_next_after_a_revocation_leases_nothing(apps, project, annotator, token, case):
    fast, django = apps
    first, second = ItemFactory(project=project, priority=2), ItemFactory(project=project)
    assert _next(fast, project, token)[0] == 200  # credentials now cached
    _revoke(case, annotator=annotator, project=project, key=token)

    expected = call(django.app, environ(next_path(project), {"exclude": [first.pk]}, token=token))
    django.calls = 0
    got = call(fast, environ(next_path(project), {"exclude": [first.pk]}, token=token))
    assert django.calls == 1
    assert got[0] == expected[0] >= 400
    assert got[2] == expected[2]
    assert not Assignment.objects.filter(item=second).exists()


@pytest.mark.usefixtures("postgresql_only")
@pytest.mark.parametrize("case", REVOCATIONS)
def test_submit_after_a_revocation_writes_nothing(apps, project, annotator, token, case):
    fast, django = apps
    item = ItemFactory(project=project)
    assert _next(fast, project, token)[0] == 200
    _revoke(case, annotator=annotator, project=project, key=token)

    env = environ(submit_path(project, item), {"labels": ["pos"]}, token=token)
    status, _, _ = call(fast, env)
    assert django.calls == 1
    assert status >= 400
    assert not Annotation.objects.exists()
    item.refresh_from_db()
    assert (item.annotation_count, item.status) == (0, "open")


@pytest.mark.usefixtures("postgresql_only")
def test_a_changed_project_is_read_afresh(apps, project, annotator, token):
    fast, django = apps
    first, second = ItemFactory(project=project, priority=2), ItemFactory(project=project)
    assert _next(fast, project, token)[0] == 200
    project.lease_seconds = 7200
    project.save()

    status, served = _next(fast, project, token, exclude=[first.pk])
    assert (status, served["item"]["id"], django.calls) == (200, second.pk, 1)
    lease = Assignment.objects.get(item=second)
    assert (lease.expires_at - lease.leased_at).total_seconds() == 7200
    # ... and what Django read is not what the fast path caches: it reads afresh, once.
    status, served = _next(fast, project, token, exclude=[first.pk])
    assert (status, served["item"]["id"], django.calls) == (200, second.pk, 1)
    with CaptureQueriesContext(connection) as cached:
        assert _next(fast, project, token, exclude=[first.pk])[0] == 200
    assert (len(cached), django.calls) == (1, 1)


@pytest.mark.usefixtures("postgresql_only")
def test_a_changed_role_is_read_afresh(apps, project, annotator, token):
    fast, django = apps
    item = ItemFactory(project=project)
    assert _next(fast, project, token)[0] == 200
    Membership.objects.filter(user=annotator, project=project).update(role="reviewer")
    env = environ(submit_path(project, item), {"labels": ["pos"]}, token=token)
    status, _, _ = call(fast, env)
    assert (status, django.calls) == (201, 1)
    assert Annotation.objects.get().annotator == annotator


@pytest.mark.usefixtures("postgresql_only")
def test_the_gold_branch_checks_the_guard_first(apps, project, annotator, token):
    fast, django = apps
    ItemFactory(project=project, priority=5)
    gold = ItemFactory(project=project, is_gold=True, gold_labels=["pos"])
    project.gold_rate = 1.0  # every "next" takes the gold branch (several statements)
    project.save()
    status, served = _next(fast, project, token)
    assert (status, served["item"]["id"]) == (200, gold.pk)
    Assignment.objects.all().delete()
    _tokens(token).delete()

    status, _, _ = call(fast, environ(next_path(project), {}, token=token))
    assert (status, django.calls) == (401, 1)
    assert not Assignment.objects.exists()


@pytest.mark.usefixtures("postgresql_only")
def test_a_failed_guard_writes_nothing_in_the_services(project, annotator):
    """The services under a guard that does not hold: GuardFailed, and no row written."""
    from labeling.services.annotations import annotation_submit
    from labeling.services.queue import queue_next_item

    item = ItemFactory(project=project)
    never = db.StatementGuard(sql="%(no)s", params={"no": False})
    with db.statement_guard(never):
        with pytest.raises(db.GuardFailed):
            queue_next_item(project=project, user=annotator)
        with pytest.raises(db.GuardFailed):
            annotation_submit(project=project, user=annotator, item_id=item.pk, labels=["pos"])
    ItemFactory(project=project, is_gold=True, gold_labels=["pos"])
    project.gold_rate = 1.0
    with db.statement_guard(never), pytest.raises(db.GuardFailed):
        queue_next_item(project=project, user=annotator)
    assert not Assignment.objects.exists()
    assert not Annotation.objects.exists()

    project.gold_rate = 0.0
    always = db.StatementGuard(sql="%(yes)s", params={"yes": True})
    with db.statement_guard(always):
        assert queue_next_item(project=project, user=annotator).item_id == item.pk
        annotation_submit(project=project, user=annotator, item_id=item.pk, labels=["pos"])
    assert Annotation.objects.get().item_id == item.pk


def test_the_cache_is_bounded(project, annotator):
    from labeling.api.credentials import CredentialCache
    from labeling.selectors import PrefetchedProject

    project.member_role = "annotator"
    annotator.prefetched_project = PrefetchedProject(project.pk, project)
    cache = CredentialCache(size=2)
    for n in range(3):
        cache.put(f"k{n}", project.pk, annotator, ("a", "b"))
    assert cache.get("k0", project.pk) is None
    assert cache.get("k2", project.pk).user is annotator
    project.member_role = None  # not a member: nothing to cache
    cache.put("k3", project.pk, annotator, ("a", "b"))
    assert cache.get("k3", project.pk) is None
