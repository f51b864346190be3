from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from labeling import views

app_name = "labeling"
urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/<id:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<id:project_id>/label/", views.label, name="label"),
    path("projects/<id:project_id>/annotations/", views.my_annotations, name="my_annotations"),
    path("projects/<id:project_id>/import/", views.import_items, name="import"),
]
