"""URLs of the ML panel contract; ``cvsa_ml.urls`` mounts them at ``/api/v1/`` and ``/v1/``.

Fixed paths come before the ``{id}`` ones so ``dataset/build`` and ``tasks/cleanup``
are never taken for ids. Ids are matched as plain strings and parsed by the views, so
an id that is not a UUID answers JSON 404 like an unknown one.
"""

from django.urls import path

from datasets import api_panel


def without_schema(view_class):
    """The same view, left out of the OpenAPI schema (for the ``/v1/`` alias mount)."""
    return type(view_class.__name__, (view_class,), {"schema": None, "__doc__": view_class.__doc__})


_ROUTES = [
    ("models/embedding", api_panel.EmbeddingModelsApi, "panel-embedding-models"),
    ("datasets", api_panel.DatasetListApi, "panel-datasets"),
    ("datasets/stats", api_panel.DatasetStatisticsApi, "panel-datasets-stats"),
    ("datasets/cleanup", api_panel.DatasetCleanupApi, "panel-datasets-cleanup"),
    ("dataset/build", api_panel.DatasetBuildApi, "panel-dataset-build"),
    ("dataset/sample", api_panel.DatasetSampleApi, "panel-dataset-sample"),
    ("dataset/create-with-sampling", api_panel.DatasetCreateWithSamplingApi, "panel-dataset-create-with-sampling"),
    ("dataset/<str:dataset_id>", api_panel.DatasetDetailApi, "panel-dataset"),
    ("tasks", api_panel.TaskListApi, "panel-tasks"),
    ("tasks/cleanup", api_panel.TaskCleanupApi, "panel-tasks-cleanup"),
    ("tasks/<str:task_id>", api_panel.TaskDetailApi, "panel-task"),
]

# Published in the schema (mounted at /api/v1/).
urlpatterns = [path(route, view.as_view(), name=name) for route, view, name in _ROUTES]

# The /v1/ alias for the unchanged ML panel client: same views, not repeated in the schema.
alias_urlpatterns = [path(route, without_schema(view).as_view(), name=name) for route, view, name in _ROUTES]
