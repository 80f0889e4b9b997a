"""Experiments under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); paths have no trailing slash."""

from django.urls import path

from experiments.api import views

urlpatterns = [
    path("experiments", views.ExperimentListApi.as_view(), name="experiment-list"),
    path("experiments/<bigint:experiment_id>", views.ExperimentDetailApi.as_view(), name="experiment-detail"),
    path("experiments/<bigint:experiment_id>/restore", views.ExperimentRestoreApi.as_view(),
         name="experiment-restore"),
]
