"""Evaluation, ONNX export and model card pages under ``/training/`` (namespace ``training``)."""

from django.urls import path

from training import evaluation_views, model_version_views

urlpatterns = [
    path("model-versions/<int:version_id>/evaluations/", evaluation_views.evaluation_panel, name="evaluation-panel"),
    path("model-versions/<int:version_id>/evaluations/list", evaluation_views.evaluation_list,
         name="evaluation-list"),
    path("model-versions/<int:version_id>/evaluations/new", evaluation_views.evaluation_create,
         name="evaluation-create"),
    path("evaluations/<int:evaluation_id>/cancel", evaluation_views.evaluation_cancel, name="evaluation-cancel"),
    path("evaluations/compare", evaluation_views.evaluation_compare, name="evaluation-compare"),
    path("model-versions/<int:version_id>/onnx/", model_version_views.onnx_panel, name="onnx-panel"),
    path("model-versions/<int:version_id>/onnx/export", model_version_views.onnx_export, name="onnx-export"),
    path("model-versions/<int:version_id>/onnx/model.onnx", model_version_views.onnx_download, name="onnx-download"),
    path("model-versions/<int:version_id>/card", model_version_views.model_card_page, name="model-card"),
]
