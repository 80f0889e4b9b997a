from django.urls import include, path

from datasets import cleaning_views, views

app_name = "datasets"

urlpatterns = [
    path("", views.dataset_index, name="index"),
    path("build", views.dataset_build, name="build"),
    path("build/count", views.build_count, name="build-count"),
    path("tasks/", views.task_list, name="tasks"),
    path("models/", views.embedding_model_list, name="models"),
    path("cleaning/", cleaning_views.cleaning_index, name="cleaning"),
    path("cleaning/preview", cleaning_views.cleaning_preview_view, name="cleaning-preview"),
    path("cleaning/run", cleaning_views.cleaning_run_view, name="cleaning-run"),
    path("cleaning/revert", cleaning_views.exclusions_revert_view, name="exclusions-revert"),
    path("versions/<uuid:version_id>/", views.version_detail, name="version-detail"),
    path("versions/<uuid:version_id>/progress", views.version_progress, name="version-progress"),
    path("versions/<uuid:version_id>/resume", views.version_resume, name="version-resume"),
    path("versions/<uuid:version_id>/cancel", views.version_cancel, name="version-cancel"),
    path("versions/<uuid:version_id>/delete", views.version_delete, name="version-delete"),
    path("versions/<uuid:version_id>/export/<str:format>", views.version_export, name="version-export"),
    path("", include("datasets.duplicate_urls")),
    path("", include("datasets.curation_task_urls")),
    path("", include("datasets.augmentation_urls")),
]
