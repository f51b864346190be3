"""URL routes of the models_app app (REST API under /api/)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from models_app.api import views

app_name = "models_app_api"
urlpatterns = [
    path(
        "projects/<id:pid>/model-versions/",
        views.ModelVersionListApi.as_view(),
        name="model-version-list",
    ),
    path(
        "projects/<id:pid>/model-versions/<id:number>/promote/",
        views.ModelVersionPromoteApi.as_view(),
        name="model-version-promote",
    ),
    path(
        "projects/<id:pid>/model-versions/rollback/",
        views.ModelVersionRollbackApi.as_view(),
        name="model-version-rollback",
    ),
    path("projects/<id:pid>/train/", views.TrainApi.as_view(), name="model-train"),
    path("projects/<id:pid>/embed/", views.EmbedApi.as_view(), name="model-embed"),
]
