"""URL routes of the models_app app (pages)."""

from django.urls import path  # noqa: F401

app_name = "models_app"
urlpatterns: list = []
