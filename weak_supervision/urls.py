"""URL routes of the weak_supervision app (pages)."""

from django.urls import path  # noqa: F401

app_name = "weak_supervision"
urlpatterns: list = []
