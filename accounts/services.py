"""Writes: API tokens made and revoked."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.models import ApiToken
from accounts.token_secrets import secret_hash, secret_new, secret_prefix
from labeling.errors import ApplicationError


def api_token_create(
    *, user: AbstractBaseUser, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `user` and its secret, which is not stored anywhere: the caller shows
    it once. A user holds at most API_TOKENS_PER_USER tokens (expired ones included)."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", {"field": "expires_at"})
    if ApiToken.objects.filter(user=user).count() >= settings.API_TOKENS_PER_USER:
        raise ApplicationError(
            f"You already have {settings.API_TOKENS_PER_USER} API tokens: revoke one first."
        )
    secret = secret_new()
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        prefix=secret_prefix(secret),
        key_hash=secret_hash(secret),
        expires_at=expires_at,
    )
    return token, secret


def api_token_revoke(*, token: ApiToken) -> None:
    """Refused from the next request on, the annotation loop's cached credentials included
    (their guard checks that the token's row still exists: labeling/api/credentials.py)."""
    token.delete()
