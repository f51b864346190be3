"""The annotation loop's happy path, served in front of Django's request handling.

"Next item" and "submit" with a token are almost every request a busy project gets. Through
the full stack, Django's handler, its middleware chain and DRF's request/negotiation/response
machinery cost about as much CPU as the two requests' own work (the queue benchmark: ~1.2 ms of
the ~6.5 ms a pair costs on 2 cores, docs/benchmarks.md). This WSGI wrapper answers those two
requests with the same code the DRF views run (token check, membership role, input validation,
the queue and submit services, the same payload builders and JSON renderer) and hands
everything else to Django unchanged.

It serves only the *successful* answers (200 and 201). Whenever the request is refused or
unusual (no token header, a bad token, not a member, invalid input, a disallowed host, an HTTPS
redirect due, a conflict, an empty queue) it hands the untouched request to Django, which gives
the DRF view's own answer: those refusals are raised before anything is written. Any other
exception (a database error, a failing after-commit hook) may come after a commit, so it is not
retried through Django: it propagates as a 500, as it would from the view.

Requests and responses pass through the same middleware classes that act on them
(TrustedProxyMiddleware, SecurityMiddleware, CommonMiddleware, XFrameOptionsMiddleware,
CSPMiddleware: forwarded headers, host checks, redirects, security headers, Content-Length);
DRF adds `Allow`. The other middleware does nothing for a token request to these two URLs
(tests/labeling/test_api_fastpath.py checks the list, so a new middleware must be looked at
here). `API_FAST_PATH=0` turns this off.

On PostgreSQL, the token's user, project and role are read once per process and then checked
inside each later request's own statement (labeling/api/credentials.py): one statement per
request.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from csp.constants import HEADER as CSP_HEADER
from csp.constants import HEADER_REPORT_ONLY as CSP_HEADER_RO
from csp.middleware import CSPMiddleware
from django.core import signals
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.core.handlers.wsgi import WSGIRequest
from django.db import connection
from django.http import Http404, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer

from accounts.token_secrets import secret_hash
from config.proxies import forwarding_headers_clean
from labeling.api.authentication import FastTokenAuthentication
from labeling.api.converters import MAX_ID
from labeling.api.credentials import CredentialCache
from labeling.api.permissions import project_for_role
from labeling.api.views.annotate import (
    annotation_payload,
    next_input,
    next_item_payload,
    submit_input,
)
from labeling.errors import ApplicationError
from labeling.models import Membership
from labeling.services.annotations import annotation_submit
from labeling.services.db import GuardFailed, statement_guard
from labeling.services.queue import queue_next_item

# The routes of `labeling.api.urls` under /api/ (a test checks them against `reverse`).
# At most 19 digits, as `<id:...>` (labeling/api/converters.py); a larger id goes to Django (404).
_NEXT = re.compile(r"/api/projects/([0-9]{1,19})/next/")
_SUBMIT = re.compile(r"/api/projects/([0-9]{1,19})/items/([0-9]{1,19})/submit/")
_MAX_BODY = 64 * 1024  # a submit is a few hundred bytes; anything larger goes to Django

# Middleware the fast path reproduces, and middleware that does nothing for these requests
# (a token request to a csrf-exempt JSON view: no session read, no messages, no static file,
# no trailing-slash redirect). Anything else in MIDDLEWARE turns the fast path off.
APPLIED_MIDDLEWARE = (
    "config.proxies.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.common.CommonMiddleware",  # Content-Length
)
INERT_MIDDLEWARE = (
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Acts only on a request that a login attempt marked as locked out; these never log in.
    "axes.middleware.AxesMiddleware",
)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class _Declined(Exception):
    """Django answers this request."""


# What the API's exception handler turns into a 4xx answer (labeling/api/exceptions.py, DRF's
# handler), plus malformed JSON (ValueError, UnicodeDecodeError included; RecursionError: nested
# too deep): raised by the services and validators before they write anything.
_ANSWERED_BY_THE_VIEW = (
    _Declined,
    ApplicationError,
    APIException,
    Http404,
    PermissionDenied,
    ValueError,
    RecursionError,
)


def _unused(request):  # the middleware instances below never call the next handler
    raise AssertionError("not reached")


class AnnotationLoopFastPath:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.renderer = JSONRenderer()
        self.security = SecurityMiddleware(_unused)
        self.common = CommonMiddleware(_unused)
        self.frame_options = XFrameOptionsMiddleware(_unused)
        self.csp = CSPMiddleware(_unused)
        # The policy of these two JSON routes is the same on every response (no nonce, no
        # per-view change): the middleware builds it once, later responses reuse its headers.
        self.csp_headers: dict[str, str] | None = None
        self.credentials = CredentialCache()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        route = self._route(environ)
        if route is None:
            return self.app(environ, start_response)
        body = self._body(environ)
        if body is None:
            return self.app(environ, start_response)
        # Django's handler sends these around every request: they reset the query log and
        # close database connections that are broken or past DB_CONN_MAX_AGE.
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            response = self._serve(environ, route, body)
        except _Declined:
            signals.request_finished.send(sender=self.__class__)
            return self.app(environ, start_response)  # `_body` left an unread copy of the body
        except BaseException:
            signals.request_finished.send(sender=self.__class__)
            raise
        signals.request_finished.send(sender=self.__class__)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [response.content]

    # ---- what is ours ---------------------------------------------------------------------

    @staticmethod
    def _route(environ: dict) -> tuple[int, int | None] | None:
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        path = environ.get("PATH_INFO", "")
        if match := _NEXT.fullmatch(path):
            route = int(match[1]), None
        elif match := _SUBMIT.fullmatch(path):
            route = int(match[1]), int(match[2])
        else:
            return None
        if max(i for i in route if i is not None) > MAX_ID:
            return None
        return route

    @staticmethod
    def _body(environ: dict) -> bytes | None:
        """The JSON body, read whole (and put back for Django), or None to decline."""
        media_type, *params = environ.get("CONTENT_TYPE", "").lower().split(";")
        if media_type.strip() != "application/json":
            return None
        if any(p.strip().startswith("charset=") and p.strip() != "charset=utf-8" for p in params):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not 0 < length <= _MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    # ---- serving ---------------------------------------------------------------------------

    def _serve(self, environ: dict, route: tuple[int, int | None], body: bytes) -> HttpResponse:
        project_id, item_id = route
        # X-Forwarded-Proto decides the HTTPS redirect below: believed from trusted proxies only.
        forwarding_headers_clean(environ)
        request = WSGIRequest(environ)
        try:
            # ALLOWED_HOSTS, DISALLOWED_USER_AGENTS, PREPEND_WWW, SECURE_SSL_REDIRECT: a
            # refusal or a redirect is Django's to give.
            if self.security.process_request(request) is not None:
                raise _Declined
            if self.common.process_request(request) is not None:
                raise _Declined
        except (DisallowedHost, PermissionDenied):
            raise _Declined from None
        key_hash, user, guard = self._user(environ, project_id)
        try:
            project, _ = project_for_role(
                project_id=project_id, user=user, role=Membership.Role.ANNOTATOR
            )
            data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
            with statement_guard(guard):
                if item_id is None:
                    data = next_input.validate(data)
                    assignment = queue_next_item(
                        project=project, user=user, exclude_item_ids=data["exclude"]
                    )
                    if assignment is None:  # nothing leased: Django answers 204
                        raise _Declined
                else:
                    data = submit_input.validate(data)
                    annotation = annotation_submit(
                        project=project, user=user, item_id=item_id, **data
                    )
        except GuardFailed:
            # What the cached credentials say no longer holds; nothing was written. Django
            # reads them afresh and answers.
            self.credentials.drop(key_hash, project_id)
            raise _Declined from None
        except _ANSWERED_BY_THE_VIEW:
            # Refusals raised before anything is written: the view gives the same answer.
            raise _Declined from None
        # Anything else (a database error, a failing after-commit hook) may come after the
        # commit: it propagates as a 500, as it would from the view, and nothing runs twice.
        if item_id is None:
            payload = next_item_payload(assignment, show_external_id=project.show_external_id)
            return self._respond(request, payload, 200)
        return self._respond(request, annotation_payload(annotation), 201)

    def _user(self, environ: dict, project_id: int):
        """DRF's token header rules (keyword, two parts), then the same lookup as the views,
        or (PostgreSQL) what an earlier lookup in this process found, with the guard that makes
        the request's statement check it (labeling/api/credentials.py)."""
        header = environ.get("HTTP_AUTHORIZATION", "").encode("iso-8859-1", "replace")
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != FastTokenAuthentication.keyword.lower().encode():
            raise _Declined
        try:
            key_hash = secret_hash(parts[1].decode())
        except UnicodeDecodeError:
            raise _Declined from None
        postgresql = connection.vendor == "postgresql"
        if postgresql and (cached := self.credentials.get(key_hash, project_id)) is not None:
            return key_hash, cached.user, cached.guard
        authentication = FastTokenAuthentication()
        authentication.project_id = project_id
        authentication.with_digests = postgresql
        try:
            user, _ = authentication.authenticate_key_hash(key_hash)
        except Exception:
            raise _Declined from None
        if authentication.digests is not None:
            self.credentials.put(key_hash, project_id, user, authentication.digests)
        return key_hash, user, None

    def _respond(self, request: WSGIRequest, payload: Any, status: int) -> HttpResponse:
        content = self.renderer.render(payload)
        response = HttpResponse(content, status=status, content_type="application/json")
        response["Allow"] = "POST, OPTIONS"  # DRF's, for a view that accepts POST
        # The three middleware classes that act on these responses, in MIDDLEWARE's order
        # (responses pass through it bottom-up).
        response = self.frame_options.process_response(request, response)
        response = self.common.process_response(request, response)
        if self.csp_headers is None:
            response = self.csp.process_response(request, response)
            self.csp_headers = {
                name: response[name] for name in (CSP_HEADER, CSP_HEADER_RO) if name in response
            }
        else:
            for name, value in self.csp_headers.items():
                response[name] = value
        return self.security.process_response(request, response)


def _reject_constant(value: str) -> None:
    raise ValueError(f"{value} is not valid JSON")  # DRF's strict JSON refuses NaN/Infinity


def with_annotation_fast_path(app: WSGIApp) -> WSGIApp:
    """`app` wrapped, unless API_FAST_PATH is off or MIDDLEWARE holds something unknown here."""
    from django.conf import settings

    known = set(APPLIED_MIDDLEWARE) | set(INERT_MIDDLEWARE)
    if not getattr(settings, "API_FAST_PATH", True) or not set(settings.MIDDLEWARE) <= known:
        return app
    return AnnotationLoopFastPath(app)
