"""What every Flywheel API view shares: authentication order and schema component names."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from labeling.api.authentication import FastTokenAuthentication


class ApiSchema(AutoSchema):
    """Name components after the view that nests them: `ItemListApi.OutputSerializer` becomes
    `ItemListOutput`, so the many nested `OutputSerializer`s never collide."""

    def get_serializer_name(self, serializer, direction):
        parts = type(serializer).__qualname__.split(".")
        if len(parts) == 1:
            return super().get_serializer_name(serializer, direction)
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in parts)


class ApiView(APIView):
    # Token first: its WWW-Authenticate header turns "not logged in" into 401 instead of 403.
    # A request without an Authorization header falls through to the session (with CSRF).
    authentication_classes = [FastTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    schema = ApiSchema()
