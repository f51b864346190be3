"""URL routes of the weak_supervision app (REST API under /api/)."""

from django.urls import path

from weak_supervision import api

app_name = "weak_supervision_api"
urlpatterns = [
    path("projects/<int:pid>/labeling-functions/", api.LFListApi.as_view(), name="lf-list"),
    path(
        "projects/<int:pid>/labeling-functions/<int:lfid>/",
        api.LFDetailApi.as_view(),
        name="lf-detail",
    ),
    path("projects/<int:pid>/labeling-functions/try/", api.LFTryApi.as_view(), name="lf-try"),
    path("projects/<int:pid>/labeling-functions/apply/", api.LFApplyApi.as_view(), name="lf-apply"),
    path(
        "projects/<int:pid>/labeling-functions/analysis/",
        api.LFAnalysisApi.as_view(),
        name="lf-analysis",
    ),
    path("projects/<int:pid>/label-model/", api.LabelModelRunApi.as_view(), name="label-model"),
    path("projects/<int:pid>/llm/", api.LLMRunApi.as_view(), name="llm"),
    path("projects/<int:pid>/cascade/", api.CascadeRunApi.as_view(), name="cascade"),
    path("projects/<int:pid>/prelabel-settings/", api.SettingsApi.as_view(), name="settings"),
    path("projects/<int:pid>/prelabels/", api.DashboardApi.as_view(), name="dashboard"),
]
