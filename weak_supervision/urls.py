"""URL routes of the weak_supervision app (pages)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from weak_supervision import views

app_name = "weak_supervision"
urlpatterns = [
    path("projects/<id:project_id>/prelabels/", views.dashboard, name="dashboard"),
]
