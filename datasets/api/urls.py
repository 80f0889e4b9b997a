"""URLs of the ML panel contract; ``cvsa_ml.urls`` mounts them at ``/api/v1/`` and ``/v1/``.

Fixed paths come before the ``{id}`` ones so ``dataset/build`` and ``tasks/cleanup``
are never taken for ids. Ids are matched as plain strings and parsed by the views, so
an id that is not a UUID answers the view's JSON 404 like an unknown one.
"""

from django.urls import path

from datasets.api import cleaning_views, views


def without_schema(view_class):
    """The same view, left out of the OpenAPI schema (for the ``/v1/`` alias mount)."""
    return type(view_class.__name__, (view_class,), {"schema": None, "__doc__": view_class.__doc__})


_ROUTES = [
    ("models/embedding", views.EmbeddingModelsApi, "panel-embedding-models"),
    ("datasets", views.DatasetListApi, "panel-datasets"),
    ("datasets/stats", views.DatasetStatisticsApi, "panel-datasets-stats"),
    ("datasets/cleanup", views.DatasetCleanupApi, "panel-datasets-cleanup"),
    ("dataset/build", views.DatasetBuildApi, "panel-dataset-build"),
    ("dataset/sample", views.DatasetSampleApi, "panel-dataset-sample"),
    ("dataset/create-with-sampling", views.DatasetCreateWithSamplingApi, "panel-dataset-create-with-sampling"),
    ("dataset/<str:dataset_id>", views.DatasetDetailApi, "panel-dataset"),
    ("tasks", views.TaskListApi, "panel-tasks"),
    ("tasks/cleanup", views.TaskCleanupApi, "panel-tasks-cleanup"),
    ("tasks/<str:task_id>", views.TaskDetailApi, "panel-task"),
    ("tasks/<str:task_id>/resume", views.TaskResumeApi, "panel-task-resume"),
]

# Cleaning rules and exclusions: /api/v1/ only (not part of the ML panel contract).
_CLEANING_ROUTES = [
    ("cleaning/preview", cleaning_views.CleaningPreviewApi, "cleaning-preview"),
    ("cleaning/run", cleaning_views.CleaningRunApi, "cleaning-run"),
    ("exclusions", cleaning_views.ExclusionListApi, "exclusions"),
    ("exclusions/revert", cleaning_views.ExclusionRevertApi, "exclusions-revert"),
]

# Published in the schema (mounted at /api/v1/).
urlpatterns = [path(route, view.as_view(), name=name) for route, view, name in _ROUTES + _CLEANING_ROUTES]

# The /v1/ alias for the unchanged ML panel client: same views, not repeated in the schema.
alias_urlpatterns = [path(route, without_schema(view).as_view(), name=name) for route, view, name in _ROUTES]
