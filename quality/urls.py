"""URL routes of the quality app (pages)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from quality import views

app_name = "quality"
urlpatterns = [
    path("projects/<id:project_id>/quality/", views.dashboard, name="dashboard"),
    path(
        "projects/<id:project_id>/quality/settings/",
        views.settings_update,
        name="settings_update",
    ),
    path("projects/<id:project_id>/quality/aggregate/", views.aggregate_now, name="aggregate"),
    path("projects/<id:project_id>/quality/gold/", views.gold_import, name="gold_import"),
    path(
        "projects/<id:project_id>/adjudication/",
        views.adjudication_list,
        name="adjudication_list",
    ),
    path(
        "projects/<id:project_id>/adjudication/<id:item_id>/",
        views.adjudication_item,
        name="adjudication_item",
    ),
    path("projects/<id:project_id>/overruled/", views.overruled, name="overruled"),
]
