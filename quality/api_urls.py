"""URL routes of the quality app (REST API under /api/)."""

from django.urls import path

from quality import api

app_name = "quality_api"
urlpatterns = [
    path("projects/<int:pid>/quality/report/", api.QualityReportApi.as_view(), name="report"),
    path("projects/<int:pid>/quality/settings/", api.QualitySettingsApi.as_view(), name="settings"),
    path("projects/<int:pid>/quality/aggregate/", api.AggregateApi.as_view(), name="aggregate"),
    path(
        "projects/<int:pid>/quality/training-labels/",
        api.TrainingLabelsApi.as_view(),
        name="training-labels",
    ),
    path(
        "projects/<int:pid>/adjudication/",
        api.AdjudicationQueueApi.as_view(),
        name="adjudication-queue",
    ),
    path(
        "projects/<int:pid>/adjudication/<int:iid>/",
        api.AdjudicationItemApi.as_view(),
        name="adjudication-item",
    ),
    path(
        "projects/<int:pid>/adjudication/<int:iid>/revoke/",
        api.AdjudicationRevokeApi.as_view(),
        name="adjudication-revoke",
    ),
    path("projects/<int:pid>/overruled/", api.OverruledApi.as_view(), name="overruled"),
    path("projects/<int:pid>/gold/", api.GoldSetApi.as_view(), name="gold-set"),
    path("projects/<int:pid>/gold/clear/", api.GoldClearApi.as_view(), name="gold-clear"),
    path("projects/<int:pid>/gold/import/", api.GoldImportApi.as_view(), name="gold-import"),
    path("projects/<int:pid>/crowd-import/", api.CrowdImportApi.as_view(), name="crowd-import"),
]
