"""URL routes of the models_app app (REST API under /api/)."""

from django.urls import path

from models_app.api import views

app_name = "models_app_api"
urlpatterns = [
    path(
        "projects/<int:pid>/model-versions/",
        views.ModelVersionListApi.as_view(),
        name="model-version-list",
    ),
    path(
        "projects/<int:pid>/model-versions/<int:number>/promote/",
        views.ModelVersionPromoteApi.as_view(),
        name="model-version-promote",
    ),
    path(
        "projects/<int:pid>/model-versions/rollback/",
        views.ModelVersionRollbackApi.as_view(),
        name="model-version-rollback",
    ),
    path("projects/<int:pid>/train/", views.TrainApi.as_view(), name="model-train"),
    path("projects/<int:pid>/embed/", views.EmbedApi.as_view(), name="model-embed"),
]
