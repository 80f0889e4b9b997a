"""Page routes, included by the app's ``urls.py`` (same namespace): curation tasks
(``datasets.curation_task_views``)."""

from django.urls import path

from datasets import curation_task_views as views

urlpatterns = [
    path("tasks/label-import/", views.label_import_page, name="curation-label-import"),
    path("tasks/<uuid:task_id>/", views.curation_task_detail, name="curation-task"),
    path("tasks/<uuid:task_id>/progress", views.curation_task_progress, name="curation-task-progress"),
    path("tasks/<uuid:task_id>/cancel", views.curation_task_cancel_view, name="curation-task-cancel"),
    path("tasks/<uuid:task_id>/resume", views.curation_task_resume_view, name="curation-task-resume"),
]
