"""What a locked-out login gets: a 429 with a clear message, as a page or as JSON.

django-axes refuses the attempt inside `authenticate()` and marks the request; its middleware
then calls `lockout_response` (AXES_LOCKOUT_CALLABLE) for the login page and the admin's. The
API's token endpoint reads the mark itself (`login_locked_out`), since DRF's request is not
the one the middleware sees."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

STATUS = 429


def lockout_seconds() -> int | None:
    """How long a lockout lasts after the last failure; None: until an operator lifts it."""
    cool_off = settings.AXES_COOLOFF_TIME
    return int(cool_off.total_seconds()) if cool_off is not None else None


def lockout_message() -> str:
    seconds = lockout_seconds()
    if seconds is None:
        wait = "Ask an operator to unlock it."
    else:
        minutes = max(1, round(seconds / 60))
        wait = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an operator."
    return f"Too many failed logins for this account or from this address. {wait}"


def login_locked_out(request) -> bool:
    """Whether django-axes refused this request's login attempt for a lockout."""
    return bool(getattr(request, "axes_locked_out", False))


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    seconds = lockout_seconds()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": lockout_message()}, status=STATUS)
    else:
        response = TemplateResponse(
            request,
            "accounts/lockout.html",
            {"message": lockout_message(), "failure_limit": settings.AXES_FAILURE_LIMIT},
            status=STATUS,
        )
        response.render()
    if seconds is not None:
        response["Retry-After"] = str(seconds)
    return response
