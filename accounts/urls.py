from django.urls import path

import labeling.api.converters  # noqa: F401  (registers the <id:...> path converter)
from accounts import views

app_name = "accounts"
urlpatterns = [
    path("tokens/", views.api_tokens, name="api_tokens"),
    path("tokens/<id:token_id>/revoke/", views.api_token_revoke_view, name="api_token_revoke"),
]
