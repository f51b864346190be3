"""URL routes of the weak_supervision app (REST API under /api/)."""

from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from weak_supervision import api

app_name = "weak_supervision_api"
urlpatterns = [
    path("projects/<id:pid>/labeling-functions/", api.LFListApi.as_view(), name="lf-list"),
    path(
        "projects/<id:pid>/labeling-functions/<id:lfid>/",
        api.LFDetailApi.as_view(),
        name="lf-detail",
    ),
    path("projects/<id:pid>/labeling-functions/try/", api.LFTryApi.as_view(), name="lf-try"),
    path("projects/<id:pid>/labeling-functions/apply/", api.LFApplyApi.as_view(), name="lf-apply"),
    path(
        "projects/<id:pid>/labeling-functions/analysis/",
        api.LFAnalysisApi.as_view(),
        name="lf-analysis",
    ),
    path("projects/<id:pid>/label-model/", api.LabelModelRunApi.as_view(), name="label-model"),
    path("projects/<id:pid>/llm/", api.LLMRunApi.as_view(), name="llm"),
    path("projects/<id:pid>/cascade/", api.CascadeRunApi.as_view(), name="cascade"),
    path("projects/<id:pid>/cascade/runs/", api.CascadeRunListApi.as_view(), name="cascade-runs"),
    path(
        "projects/<id:pid>/cascade/runs/<id:rid>/undo/",
        api.CascadeRunUndoApi.as_view(),
        name="cascade-run-undo",
    ),
    path("projects/<id:pid>/prelabel-settings/", api.SettingsApi.as_view(), name="settings"),
    path("projects/<id:pid>/prelabels/", api.DashboardApi.as_view(), name="dashboard"),
]
