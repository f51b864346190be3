"""URL routes of the quality app (pages)."""

from django.urls import path  # noqa: F401

app_name = "quality"
urlpatterns: list = []
