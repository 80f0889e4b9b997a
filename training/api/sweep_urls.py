"""Sweeps under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); no trailing slashes."""

from django.urls import path

from training.api import sweeps

urlpatterns = [
    path("sweeps", sweeps.SweepListApi.as_view(), name="sweep-list"),
    path("sweeps/<bigint:sweep_id>", sweeps.SweepDetailApi.as_view(), name="sweep-detail"),
    path("sweeps/<bigint:sweep_id>/cancel", sweeps.SweepCancelApi.as_view(), name="sweep-cancel"),
]
