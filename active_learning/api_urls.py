"""URL routes of the active_learning app (REST API under /api/)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from active_learning.api import views

app_name = "active_learning_api"
urlpatterns = [
    path(
        "projects/<id:pid>/items/<id:iid>/similar/",
        views.ItemSimilarApi.as_view(),
        name="item-similar",
    ),
    path(
        "projects/<id:pid>/mined-errors/",
        views.MinedErrorListApi.as_view(),
        name="mined-error-list",
    ),
]
