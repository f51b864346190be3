"""URL routes of the weak_supervision app (pages)."""

from django.urls import path

from weak_supervision import views

app_name = "weak_supervision"
urlpatterns = [
    path("projects/<int:project_id>/prelabels/", views.dashboard, name="dashboard"),
]
