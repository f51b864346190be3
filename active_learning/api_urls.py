"""URL routes of the active_learning app (REST API under /api/)."""

from django.urls import path  # noqa: F401

app_name = "active_learning_api"
urlpatterns: list = []
