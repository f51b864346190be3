"""URL routes of the models_app app (REST API under /api/)."""

from django.urls import path  # noqa: F401

app_name = "models_app_api"
urlpatterns: list = []
