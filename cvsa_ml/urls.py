from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cvsa_ml import api, views
from datasets.api_urls import alias_urlpatterns as panel_alias_urlpatterns
from datasets.api_urls import without_schema

api_v1 = [
    path("health", api.HealthApi.as_view(), name="health"),
    path("", include("labeling.api_urls")),
    path("", include("datasets.api_urls")),
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
    path("api/v1/", include((api_v1, "api"), namespace="api-v1")),
    path("v1/", include((panel_v1, "panel"), namespace="panel-v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
