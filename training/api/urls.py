"""Runs and architectures under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); no trailing slashes.

An artifact's path may hold slashes (``<path:...>``); the view serves only the paths the
run recorded, so ``..`` or an unknown file is a 404.
"""

from django.urls import path

from training.api import views

urlpatterns = [
    path("architectures", views.ArchitectureListApi.as_view(), name="architecture-list"),
    path("runs", views.RunListApi.as_view(), name="run-list"),
    path("runs/<bigint:run_id>", views.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<bigint:run_id>/cancel", views.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<bigint:run_id>/restore", views.RunRestoreApi.as_view(), name="run-restore"),
    path("runs/<bigint:run_id>/metrics", views.RunMetricSeriesApi.as_view(), name="run-metrics"),
    path("runs/<bigint:run_id>/artifacts/<path:artifact_path>", views.RunArtifactApi.as_view(), name="run-artifact"),
]
