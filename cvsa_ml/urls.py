from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api.error_views import api_not_found
from cvsa_ml import api, views
from datasets.api.urls import alias_urlpatterns as panel_alias_urlpatterns
from datasets.api.urls import without_schema

api_v1 = [
    path("health", api.HealthApi.as_view(), name="health"),
    path("", include("labeling.api_urls")),
    path("", include("datasets.api.urls")),
    path("", include("experiments.api.urls")),
    path("", include("training.api.urls")),
    path("", include("training.api.sweep_urls")),
    path("", include("training.api.analysis_urls")),
    path("", include("training.api.label_issue_urls")),
    path("", include("training.api.registry_urls")),
    path("", include("training.api.evaluation_urls")),
    path("", include("training.api.predict_urls")),
    path("", include("labeling.api_labeler_urls")),
    path("", include("labeling.api_review_urls")),
    path("", include("datasets.api.duplicate_urls")),
    path("", include("datasets.api.curation_task_urls")),
    path("", include("datasets.api.augmentation_urls")),
]

# The old ML panel client's default base URL: health and the panel contract again.
panel_v1 = [
    path("health", without_schema(api.HealthApi).as_view(), name="health"),
    path("", include(panel_alias_urlpatterns)),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("labeling/", include("labeling.urls")),
    path("datasets/", include("datasets.urls")),
    path("experiments/", include("experiments.urls")),
    path("training/", include("training.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="api-v1")),
    path("v1/", include((panel_v1, "panel"), namespace="panel-v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: any other path under an API prefix is a JSON 404, never an HTML page or a redirect.
    re_path(r"^(?:api|v1)/", api_not_found, name="api-not-found"),
]

# Errors raised outside DRF views: JSON under /api/ and /v1/, the HTML templates elsewhere.
handler400 = "core.api.error_views.bad_request"
handler403 = "core.api.error_views.permission_denied"
handler404 = "core.api.error_views.page_not_found"
handler500 = "core.api.error_views.server_error"
