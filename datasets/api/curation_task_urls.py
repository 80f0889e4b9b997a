"""API routes, mounted by ``cvsa_ml.urls`` under ``/api/v1/`` (namespace ``api-v1``):
curation tasks (``datasets.api.curation_task_views``)."""

from django.urls import path

from datasets.api import curation_task_views as views

urlpatterns = [
    path("curation/tasks", views.CurationTaskListApi.as_view(), name="curation-task-list"),
    path("curation/tasks/<str:task_id>", views.CurationTaskDetailApi.as_view(), name="curation-task-detail"),
    path("curation/tasks/<str:task_id>/cancel", views.CurationTaskCancelApi.as_view(), name="curation-task-cancel"),
    path("curation/tasks/<str:task_id>/resume", views.CurationTaskResumeApi.as_view(), name="curation-task-resume"),
    path("curation/label-import", views.CurationLabelImportApi.as_view(), name="curation-label-import"),
]
