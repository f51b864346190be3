"""Token authentication for scripts: exchange a username and password for a new API token."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.lockout import lockout_message, lockout_seconds, login_locked_out
from accounts.services import api_token_create


class TokenObtainApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})
        name = serializers.CharField(max_length=100, required=False, allow_blank=True)
        expires_in_days = serializers.IntegerField(
            min_value=1, max_value=3650, required=False, allow_null=True
        )

        class Meta:
            ref_name = "TokenCreateInput"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="The secret: shown this once, never again.")
        id = serializers.IntegerField()
        prefix = serializers.CharField()
        name = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)

        class Meta:
            ref_name = "TokenCreated"

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        operation_id="auth_token_create",
        summary="Create an API token",
        description="Send `username` and `password` (and optionally a `name` and "
        "`expires_in_days`); use the returned `token` as `Authorization: Token <token>` on "
        "every other request. Each call creates a new token, whose secret is returned this "
        "once: only its hash is stored. Revoke tokens on the API tokens page. Too many failed "
        "attempts for one account or from one address answer 429 for a while.",
        tags=["auth"],
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # As DRF's AuthTokenSerializer; django-axes (AUTHENTICATION_BACKENDS) counts failures
        # and marks the request it was given when the account or the address is locked out.
        user = authenticate(request=request, username=data["username"], password=data["password"])
        if login_locked_out(request):
            raise Throttled(wait=lockout_seconds(), detail=lockout_message())
        if user is None:
            raise ValidationError(
                {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        days = data.get("expires_in_days")
        token, secret = api_token_create(
            user=user,
            name=data.get("name", ""),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        payload = {
            "token": secret,
            "id": token.pk,
            "prefix": token.prefix,
            "name": token.name,
            "expires_at": token.expires_at,
        }
        response = Response(self.OutputSerializer(payload).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response
