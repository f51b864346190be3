from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health

urlpatterns = [
    path("healthz", health.healthz),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline one.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("api/", include("models_app.api_urls")),
    path("api/", include("active_learning.api_urls")),
    path("api/", include("weak_supervision.api_urls")),
    path("api/", include("quality.api_urls")),
    path("", include("labeling.urls")),
    path("", include("models_app.urls")),
    path("", include("active_learning.urls")),
    path("", include("weak_supervision.urls")),
    path("", include("quality.urls")),
]
