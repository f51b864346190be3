"""URL routes of the active_learning app (REST API under /api/)."""

from django.urls import path

from active_learning.api import views

app_name = "active_learning_api"
urlpatterns = [
    path(
        "projects/<int:pid>/items/<int:iid>/similar/",
        views.ItemSimilarApi.as_view(),
        name="item-similar",
    ),
    path(
        "projects/<int:pid>/mined-errors/",
        views.MinedErrorListApi.as_view(),
        name="mined-error-list",
    ),
]
