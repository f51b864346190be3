"""REST API routes (mounted under /api/). Schema: /api/schema/, docs: /api/docs/."""

from django.urls import path

from labeling.api.views.annotate import (
    AnnotationListApi,
    AnnotationRetractApi,
    AnnotationUpdateApi,
    ItemNextApi,
    ItemSkipApi,
    ItemSubmitApi,
)
from labeling.api.views.auth import TokenObtainApi
from labeling.api.views.items import ItemDetailApi, ItemListApi
from labeling.api.views.jobs import ExportApi, ImportCreateApi, JobDetailApi, JobListApi
from labeling.api.views.projects import ProjectDetailApi, ProjectListApi, ProjectProgressApi

app_name = "api"

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="token"),
    path("projects/", ProjectListApi.as_view(), name="project-list"),
    path("projects/<int:pid>/", ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<int:pid>/progress/", ProjectProgressApi.as_view(), name="project-progress"),
    path("projects/<int:pid>/items/", ItemListApi.as_view(), name="item-list"),
    path("projects/<int:pid>/items/<int:iid>/", ItemDetailApi.as_view(), name="item-detail"),
    path("projects/<int:pid>/next/", ItemNextApi.as_view(), name="item-next"),
    path("projects/<int:pid>/items/<int:iid>/submit/", ItemSubmitApi.as_view(), name="item-submit"),
    path("projects/<int:pid>/items/<int:iid>/skip/", ItemSkipApi.as_view(), name="item-skip"),
    path("projects/<int:pid>/annotations/", AnnotationListApi.as_view(), name="annotation-list"),
    path("annotations/<int:aid>/", AnnotationUpdateApi.as_view(), name="annotation-update"),
    path(
        "annotations/<int:aid>/retract/",
        AnnotationRetractApi.as_view(),
        name="annotation-retract",
    ),
    path("projects/<int:pid>/imports/", ImportCreateApi.as_view(), name="import-create"),
    path("projects/<int:pid>/jobs/", JobListApi.as_view(), name="job-list"),
    path("projects/<int:pid>/export/", ExportApi.as_view(), name="export"),
    path("jobs/<int:jid>/", JobDetailApi.as_view(), name="job-detail"),
]
