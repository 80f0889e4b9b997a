"""Predictions and batch scoring jobs under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); no trailing slashes."""

from django.urls import path

from training.api import predict as views

urlpatterns = [
    path("predict", views.PredictApi.as_view(), name="predict"),
    path("scoring-jobs", views.ScoringJobListApi.as_view(), name="scoring-job-list"),
    path("scoring-jobs/<bigint:job_id>", views.ScoringJobDetailApi.as_view(), name="scoring-job-detail"),
    path("scoring-jobs/<bigint:job_id>/cancel", views.ScoringJobCancelApi.as_view(), name="scoring-job-cancel"),
]
