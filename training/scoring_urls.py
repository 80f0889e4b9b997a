"""The batch-scoring panel of a model version under ``/training/`` (namespace ``training``)."""

from django.urls import path

from training import scoring_views as views

urlpatterns = [
    path("model-versions/<int:version_id>/scoring", views.scoring_panel, name="scoring-panel"),
    path("model-versions/<int:version_id>/scoring/start", views.scoring_job_start, name="scoring-job-start"),
    path("scoring-jobs/<int:job_id>/cancel", views.scoring_job_cancel, name="scoring-job-cancel"),
]
