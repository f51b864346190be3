"""URL routes of the weak_supervision app (REST API under /api/)."""

from django.urls import path  # noqa: F401

app_name = "weak_supervision_api"
urlpatterns: list = []
