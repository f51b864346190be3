"""URL routes of the quality app (pages)."""

from django.urls import path

from quality import views

app_name = "quality"
urlpatterns = [
    path("projects/<int:project_id>/quality/", views.dashboard, name="dashboard"),
    path(
        "projects/<int:project_id>/quality/settings/",
        views.settings_update,
        name="settings_update",
    ),
    path("projects/<int:project_id>/quality/aggregate/", views.aggregate_now, name="aggregate"),
    path("projects/<int:project_id>/quality/gold/", views.gold_import, name="gold_import"),
    path(
        "projects/<int:project_id>/adjudication/",
        views.adjudication_list,
        name="adjudication_list",
    ),
    path(
        "projects/<int:project_id>/adjudication/<int:item_id>/",
        views.adjudication_item,
        name="adjudication_item",
    ),
    path("projects/<int:project_id>/overruled/", views.overruled, name="overruled"),
]
