from django.urls import path

from labeling import views

app_name = "labeling"
urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/<int:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path("projects/<int:project_id>/annotations/", views.my_annotations, name="my_annotations"),
    path("projects/<int:project_id>/import/", views.import_items, name="import"),
]
