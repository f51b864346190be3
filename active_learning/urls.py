"""URL routes of the active_learning app (pages)."""

from django.urls import path  # noqa: F401

app_name = "active_learning"
urlpatterns: list = []
