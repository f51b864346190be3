"""REST API routes (mounted under /api/). Schema: /api/schema/, docs: /api/docs/."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
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
from labeling.api.views.jobs import (
    ExportApi,
    ImportCreateApi,
    JobDetailApi,
    JobListApi,
    JobRestartApi,
)
from labeling.api.views.projects import ProjectDetailApi, ProjectListApi, ProjectProgressApi

app_name = "api"

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="token"),
    path("projects/", ProjectListApi.as_view(), name="project-list"),
    path("projects/<id:pid>/", ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<id:pid>/progress/", ProjectProgressApi.as_view(), name="project-progress"),
    path("projects/<id:pid>/items/", ItemListApi.as_view(), name="item-list"),
    path("projects/<id:pid>/items/<id:iid>/", ItemDetailApi.as_view(), name="item-detail"),
    path("projects/<id:pid>/next/", ItemNextApi.as_view(), name="item-next"),
    path("projects/<id:pid>/items/<id:iid>/submit/", ItemSubmitApi.as_view(), name="item-submit"),
    path("projects/<id:pid>/items/<id:iid>/skip/", ItemSkipApi.as_view(), name="item-skip"),
    path("projects/<id:pid>/annotations/", AnnotationListApi.as_view(), name="annotation-list"),
    path("annotations/<id:aid>/", AnnotationUpdateApi.as_view(), name="annotation-update"),
    path(
        "annotations/<id:aid>/retract/",
        AnnotationRetractApi.as_view(),
        name="annotation-retract",
    ),
    path("projects/<id:pid>/imports/", ImportCreateApi.as_view(), name="import-create"),
    path("projects/<id:pid>/jobs/", JobListApi.as_view(), name="job-list"),
    path("projects/<id:pid>/export/", ExportApi.as_view(), name="export"),
    path("jobs/<id:jid>/", JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<id:jid>/restart/", JobRestartApi.as_view(), name="job-restart"),
]
