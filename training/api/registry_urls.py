"""The model registry under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); no trailing slashes."""

from django.urls import path

from training.api import registry

urlpatterns = [
    path("models", registry.RegisteredModelListApi.as_view(), name="registered-model-list"),
    path("models/<str:name>", registry.RegisteredModelDetailApi.as_view(), name="registered-model-detail"),
    path("models/<str:name>/versions", registry.ModelVersionListApi.as_view(), name="model-version-list"),
    path("models/<str:name>/history", registry.ModelHistoryApi.as_view(), name="registered-model-history"),
    path("model-versions/<bigint:version_id>", registry.ModelVersionDetailApi.as_view(), name="model-version-detail"),
    path("model-versions/<bigint:version_id>/transition", registry.ModelVersionTransitionApi.as_view(),
         name="model-version-transition"),
]
