"""Evaluations, ONNX export and model cards under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); no trailing slashes."""

from django.urls import path

from training.api import evaluations as views

urlpatterns = [
    path("model-versions/<bigint:version_id>/evaluations", views.ModelVersionEvaluationsApi.as_view(),
         name="model-version-evaluations"),
    path("evaluations/<bigint:evaluation_id>", views.EvaluationDetailApi.as_view(), name="evaluation-detail"),
    path("evaluations/<bigint:evaluation_id>/cancel", views.EvaluationCancelApi.as_view(), name="evaluation-cancel"),
    path("model-versions/<bigint:version_id>/onnx", views.ModelVersionOnnxApi.as_view(), name="model-version-onnx"),
    path("model-versions/<bigint:version_id>/card", views.ModelVersionCardApi.as_view(), name="model-version-card"),
]
