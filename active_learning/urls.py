"""URL routes of the active_learning app (pages)."""

from django.urls import path

from active_learning import views

app_name = "active_learning"
urlpatterns = [
    path("projects/<int:project_id>/model/", views.model_dashboard, name="dashboard"),
    path("projects/<int:project_id>/similar/", views.item_similar_page, name="similar"),
]
