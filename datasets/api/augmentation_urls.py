"""API routes, mounted by ``cvsa_ml.urls`` under ``/api/v1/`` (namespace ``api-v1``)."""

from django.urls import path

from datasets.api import augmentation_views

urlpatterns: list = [
    path("datasets/<str:dataset_id>/augment", augmentation_views.AugmentApi.as_view(), name="dataset-augment"),
    path("datasets/<str:dataset_id>/augmented", augmentation_views.AugmentedApi.as_view(), name="dataset-augmented"),
]
