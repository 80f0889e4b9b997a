"""Fixtures for the ML panel API and the dataset pages (import them into a test module).

They build on ``tests/datasets/conftest.py`` (a loopback OpenAI-protocol server, a
temporary registry naming it, eager Celery) and ``tests/datasets/factories.py``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from datasets import services
from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionStatus,
    EmbeddingModel,
)
from tests.datasets.conftest import MODEL_KEY
from tests.datasets.factories import NEGATIVE, POSITIVE, TIE, UNLABELED, label, make_labelers, make_videos

PREFIXES = ("/v1", "/api/v1")


@pytest.fixture
def panel_admin(make_user):
    """Builds, deletes and cleanups need the admins role (``can_manage_datasets``)."""
    return make_user("panel-admin", group="admins")


@pytest.fixture
def panel_client(panel_admin) -> APIClient:
    """An API client logged in as an admin (what the ML panel's operator would be)."""
    client = APIClient()
    client.force_authenticate(panel_admin)
    return client


@pytest.fixture
def labeler_panel_client(user) -> APIClient:
    """An API client logged in as a plain labeler: may read, may not build or delete."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def corpus(db) -> dict[str, list]:
    """6 positive, 4 negative, 2 tied (inconsistent, no consensus), 2 unlabeled videos."""
    labelers = make_labelers(2, prefix="panel-labeler")
    groups = {
        "positive": make_videos(6, start_aid=10_000),
        "negative": make_videos(4, start_aid=20_000),
        "ties": make_videos(2, start_aid=30_000),
        "unlabeled": make_videos(2, start_aid=40_000),
    }
    label(groups["positive"], labelers, POSITIVE)
    label(groups["negative"], labelers, NEGATIVE)
    label(groups["ties"], labelers, TIE)
    label(groups["unlabeled"], labelers, UNLABELED)
    groups["labeled"] = groups["positive"] + groups["negative"]
    return groups


@pytest.fixture
def build(registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks):
    """build(aids, **options) -> the finished DatasetTask (the job ran eagerly on commit)."""

    def run(aids, **options) -> DatasetTask:
        options.setdefault("embedding_model_key", MODEL_KEY)
        with django_capture_on_commit_callbacks(execute=True):
            task = services.dataset_build_request(services.BuildRequest(aid_list=aids, **options)).task
        task.refresh_from_db()
        return task

    return run


@pytest.fixture
def ready_version(corpus, build) -> DatasetVersion:
    task = build([video.aid for video in corpus["labeled"] + corpus["ties"]], description="ten labeled videos")
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    return task.dataset_version


@pytest.fixture
def embedding_model(registry_file) -> EmbeddingModel:
    return services.embedding_models_sync()[MODEL_KEY]


def make_versions(count: int, model: EmbeddingModel, *, status: str = DatasetVersionStatus.READY,
                  name: str = "bulk", age: timedelta | None = None) -> list[DatasetVersion]:
    """Version rows straight into the table (no items), for list and query-count tests.

    ``age`` moves ``created_at`` back. A ready row is immutable (a database trigger), so
    aged ready rows are inserted as building, aged, then frozen.
    """
    dataset, _ = Dataset.objects.get_or_create(name=name)
    start = (DatasetVersion.objects.filter(dataset=dataset).count() or 0) + 1
    ready = status == DatasetVersionStatus.READY
    insert_status = DatasetVersionStatus.BUILDING if ready and age else status
    versions = DatasetVersion.objects.bulk_create([
        DatasetVersion(
            dataset=dataset, number=start + index, embedding_model=model, embedding_dimensions=model.dimensions,
            text_template_version="v1", train_ratio=0.8, val_ratio=0.1, test_ratio=0.1, seed=1, status=insert_status,
            total_records=10 + index, new_embeddings=index, reused_embeddings=1,
            positives=6 + index, negatives=4, train_count=8 + index, val_count=1, test_count=1,
            frozen_at=timezone.now() if ready else None, content_hash=uuid.uuid4().hex * 2 if ready else "",
            error="embedding API down" if status == DatasetVersionStatus.FAILED else "",
        )
        for index in range(count)
    ])
    if age:
        ids = [version.pk for version in versions]
        DatasetVersion.objects.filter(pk__in=ids).update(created_at=timezone.now() - age)
        if ready:
            DatasetVersion.objects.filter(pk__in=ids).update(status=DatasetVersionStatus.READY)
        versions = list(DatasetVersion.objects.filter(pk__in=ids).order_by("number"))
    return versions


def make_tasks(count: int, *, status: str = DatasetTaskStatus.COMPLETED, age: timedelta = timedelta(0),
               version: DatasetVersion | None = None) -> list[DatasetTask]:
    finished = status in (DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED)
    now = timezone.now()
    tasks = DatasetTask.objects.bulk_create([
        DatasetTask(
            status=status, dataset_version=version, total_steps=6,
            current_step="completed" if finished else "initialized",
            percentage=100.0 if status == DatasetTaskStatus.COMPLETED else 0.0,
            started_at=now - age if status != DatasetTaskStatus.PENDING else None,
            completed_at=now - age if finished else None,
            error="boom" if status == DatasetTaskStatus.FAILED else "",
        )
        for _ in range(count)
    ])
    if age:  # created_at is auto_now_add: move it back afterwards
        DatasetTask.objects.filter(pk__in=[task.pk for task in tasks]).update(created_at=now - age)
    return tasks


def counts() -> dict[str, int]:
    """Rows that a refused request must not have written."""
    return {
        "datasets": Dataset.objects.count(),
        "versions": DatasetVersion.objects.count(),
        "tasks": DatasetTask.objects.count(),
    }


def build_form_data(**overrides) -> dict:
    """A valid POST of the build form (``/datasets/build``), with ``overrides`` applied."""
    data = {
        "name": "form", "description": "", "embedding_model": MODEL_KEY, "mode": "sampling", "aid_list": "",
        "strategy": "all", "limit": "", "label_value": "", "train_ratio": "0.8", "val_ratio": "0.1",
        "test_ratio": "0.1", "seed": "42",
    }
    data.update(overrides)
    return data


@pytest.fixture
def submit(logged_in_client, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks):
    """POST the build form as the logged-in user, running the queued build eagerly on commit."""
    def post(data: dict, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return logged_in_client.post("/datasets/build", data, **extra)

    return post
