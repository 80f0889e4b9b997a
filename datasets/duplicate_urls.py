"""Page routes, included by the app's ``urls.py`` (same namespace)."""

from django.urls import path

from datasets import duplicate_views

urlpatterns = [
    path("duplicates/", duplicate_views.duplicates_index, name="duplicates"),
    path("duplicates/scan", duplicate_views.duplicates_scan, name="duplicates-scan"),
    path("duplicates/groups/<bigint:group_id>/resolve", duplicate_views.duplicate_group_resolve_view,
         name="duplicate-group-resolve"),
    path("duplicates/tasks/<uuid:task_id>/keep-lowest", duplicate_views.duplicates_keep_lowest,
         name="duplicates-keep-lowest"),
]
