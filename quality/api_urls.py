"""URL routes of the quality app (REST API under /api/)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from quality import api

app_name = "quality_api"
urlpatterns = [
    path("projects/<id:pid>/quality/report/", api.QualityReportApi.as_view(), name="report"),
    path("projects/<id:pid>/quality/settings/", api.QualitySettingsApi.as_view(), name="settings"),
    path("projects/<id:pid>/quality/aggregate/", api.AggregateApi.as_view(), name="aggregate"),
    path(
        "projects/<id:pid>/quality/training-labels/",
        api.TrainingLabelsApi.as_view(),
        name="training-labels",
    ),
    path(
        "projects/<id:pid>/adjudication/",
        api.AdjudicationQueueApi.as_view(),
        name="adjudication-queue",
    ),
    path(
        "projects/<id:pid>/adjudication/<id:iid>/",
        api.AdjudicationItemApi.as_view(),
        name="adjudication-item",
    ),
    path(
        "projects/<id:pid>/adjudication/<id:iid>/revoke/",
        api.AdjudicationRevokeApi.as_view(),
        name="adjudication-revoke",
    ),
    path("projects/<id:pid>/overruled/", api.OverruledApi.as_view(), name="overruled"),
    path("projects/<id:pid>/gold/", api.GoldSetApi.as_view(), name="gold-set"),
    path("projects/<id:pid>/gold/clear/", api.GoldClearApi.as_view(), name="gold-clear"),
    path("projects/<id:pid>/gold/import/", api.GoldImportApi.as_view(), name="gold-import"),
    path("projects/<id:pid>/crowd-import/", api.CrowdImportApi.as_view(), name="crowd-import"),
]
