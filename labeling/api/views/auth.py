"""Token authentication for scripts: exchange a username and password for a new API token."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.lockout import lockout_message, lockout_seconds, login_locked_out
from accounts.services import api_token_create


class TokenObtainApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(AuthTokenSerializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True)
        expires_in_days = serializers.IntegerField(
            min_value=1, max_value=3650, required=False, allow_null=True
        )

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="The secret: shown this once, never again.")
        id = serializers.IntegerField()
        prefix = serializers.CharField()
        name = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)

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
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        valid = serializer.is_valid()
        # django-axes marks DRF's request (the one `authenticate()` was given).
        if login_locked_out(request):
            raise Throttled(wait=lockout_seconds(), detail=lockout_message())
        if not valid:
            raise ValidationError(serializer.errors)
        data = serializer.validated_data
        days = data.get("expires_in_days")
        token, secret = api_token_create(
            user=data["user"],
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
