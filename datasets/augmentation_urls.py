"""Page routes, included by the app's ``urls.py`` (same namespace)."""

from django.urls import path

from datasets import augmentation_views

urlpatterns: list = [
    path("versions/<uuid:version_id>/augmentation", augmentation_views.augmentation_panel,
         name="augmentation-panel"),
    path("versions/<uuid:version_id>/augmentation/queue", augmentation_views.augmentation_queue_view,
         name="augmentation-queue"),
]
