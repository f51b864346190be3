"""Token authentication for scripts: exchange a username and password for an API token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken


class TokenObtainApi(ObtainAuthToken):
    """DRF's own view; annotated so the schema shows what it returns."""

    @extend_schema(
        request=AuthTokenSerializer,
        responses=inline_serializer("Token", {"token": serializers.CharField()}),
        operation_id="auth_token_create",
        summary="Get an API token",
        description="Send `username` and `password`; use the returned token as "
        "`Authorization: Token <token>` on every other request. The same token is returned "
        "until it is deleted in the admin.",
        tags=["auth"],
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
