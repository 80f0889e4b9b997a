"""Run analysis under ``/api/v1/`` (mounted by ``cvsa_ml.urls``): reproduce, mistakes."""

from django.urls import path

from training.api import analysis_views

urlpatterns = [
    path("runs/<bigint:run_id>/reproduce", analysis_views.RunReproduceApi.as_view(), name="run-reproduce"),
    path("runs/<bigint:run_id>/errors", analysis_views.RunErrorsApi.as_view(), name="run-errors"),
]
