"""URL routes of the active_learning app (pages)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from active_learning import views

app_name = "active_learning"
urlpatterns = [
    path("projects/<id:project_id>/model/", views.model_dashboard, name="dashboard"),
    path("projects/<id:project_id>/similar/", views.item_similar_page, name="similar"),
]
