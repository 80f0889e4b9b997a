"""API routes, mounted by ``cvsa_ml.urls`` under ``/api/v1/`` (namespace ``api-v1``)."""

from django.urls import path

from datasets.api import duplicate_views

urlpatterns = [
    path("duplicates/tasks/<uuid:task_id>/groups", duplicate_views.DuplicateGroupListApi.as_view(),
         name="duplicate-groups"),
    path("duplicates/tasks/<uuid:task_id>/keep-lowest", duplicate_views.DuplicateKeepLowestApi.as_view(),
         name="duplicate-keep-lowest"),
    path("duplicates/groups/<bigint:group_id>/resolve", duplicate_views.DuplicateGroupResolveApi.as_view(),
         name="duplicate-group-resolve"),
]
