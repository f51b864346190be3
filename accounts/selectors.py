"""Reads: a user's API tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from accounts.models import ApiToken


def api_token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def api_token_of_user(*, user: AbstractBaseUser, token_id: int) -> ApiToken | None:
    """The user's own token, or None (someone else's is as good as missing)."""
    return ApiToken.objects.filter(user=user, pk=token_id).first()
