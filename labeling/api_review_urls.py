"""API routes, mounted by ``cvsa_ml.urls`` under ``/api/v1/`` (namespace ``api-v1``)."""

from django.urls import path

from labeling.api_bulk_labels import BulkLabelApi, BulkLabelPreviewApi

urlpatterns = [
    path("labels/bulk/preview", BulkLabelPreviewApi.as_view(), name="label-bulk-preview"),
    path("labels/bulk", BulkLabelApi.as_view(), name="label-bulk"),
]
