"""The user's API tokens page: create one (its secret shown once), list and revoke them."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import ApiTokenCreateForm
from accounts.selectors import api_token_list, api_token_of_user
from accounts.services import api_token_create, api_token_revoke
from labeling.errors import ApplicationError


def _page(request: HttpRequest, form: ApiTokenCreateForm, *, secret=None, status=200):
    response = render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": api_token_list(user=request.user),
            "secret": secret,
            "now": timezone.now(),
        },
        status=status,
    )
    # The page may carry a secret: never kept by a cache or the browser's history.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, ApiTokenCreateForm())
    form = ApiTokenCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    days = form.cleaned_data["expires_in_days"]
    try:
        token, secret = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _page(request, form, status=400)
    return _page(request, ApiTokenCreateForm(), secret={"token": token, "value": secret})


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = api_token_of_user(user=request.user, token_id=token_id)
    if token is None:
        raise Http404("No such token.")
    api_token_revoke(token=token)
    messages.success(request, f"Token {token.prefix}… revoked: it no longer works.")
    return redirect("accounts:api_tokens")
