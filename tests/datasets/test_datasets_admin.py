"""The datasets admin: every page loads; vectors, versions and tasks are read-only."""

from __future__ import annotations

import pytest

from datasets.models import DatasetTask, DatasetVersion, Embedding, EmbeddingModel
from tests.datasets.panel_fixtures import (  # noqa: F401 (fixtures)
    build,
    corpus,
    embedding_model,
    make_versions,
    ready_version,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-for-tests-1"))
    return client


@pytest.mark.parametrize("model", ["embeddingmodel", "embedding", "dataset", "datasetversion", "datasettask"])
def test_changelists_load(admin_client_logged_in, ready_version, model):
    assert admin_client_logged_in.get(f"/admin/datasets/{model}/").status_code == 200


def test_change_pages_load(admin_client_logged_in, ready_version):
    embedding = Embedding.objects.first()
    task = DatasetTask.objects.get()
    for url in (
        f"/admin/datasets/embeddingmodel/{ready_version.embedding_model_id}/change/",
        f"/admin/datasets/embedding/{embedding.pk}/change/",
        f"/admin/datasets/dataset/{ready_version.dataset_id}/change/",
        f"/admin/datasets/datasetversion/{ready_version.pk}/change/",
        f"/admin/datasets/datasettask/{task.pk}/change/",
    ):
        response = admin_client_logged_in.get(url)
        assert response.status_code == 200, url


def test_embedding_list_never_shows_vectors(admin_client_logged_in, ready_version):
    embedding = Embedding.objects.first()

    page = admin_client_logged_in.get("/admin/datasets/embedding/").content.decode()

    assert embedding.checksum in page
    assert f"{float(embedding.vector[0]):.4f}" not in page
    detail = admin_client_logged_in.get(f"/admin/datasets/embedding/{embedding.pk}/change/").content.decode()
    assert f"{float(embedding.vector[0]):.4f}" in detail  # a short preview on the detail page


def test_vectors_models_and_tasks_are_read_only(admin_client_logged_in, ready_version):
    embedding = Embedding.objects.first()
    task = DatasetTask.objects.get()
    for model in ("embeddingmodel", "embedding", "datasettask", "datasetversion"):
        assert admin_client_logged_in.get(f"/admin/datasets/{model}/add/").status_code == 403
    for url in (f"/admin/datasets/embedding/{embedding.pk}/delete/", f"/admin/datasets/datasettask/{task.pk}/delete/"):
        assert admin_client_logged_in.post(url, {"post": "yes"}).status_code == 403
    assert Embedding.objects.filter(pk=embedding.pk).exists() and EmbeddingModel.objects.exists()


def test_a_ready_version_cannot_be_changed(admin_client_logged_in, ready_version):
    page = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{ready_version.pk}/change/").content.decode()
    assert 'name="_save"' not in page

    response = admin_client_logged_in.post(
        f"/admin/datasets/datasetversion/{ready_version.pk}/change/", {"description": "edited"}
    )

    assert response.status_code == 403
    ready_version.refresh_from_db()
    assert ready_version.description == "ten labeled videos"


def test_a_failed_version_description_can_be_edited(admin_client_logged_in, embedding_model):
    (version,) = make_versions(1, embedding_model, status="failed")

    page = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{version.pk}/change/").content.decode()
    assert 'name="description"' in page and 'name="_save"' in page

    response = admin_client_logged_in.post(
        f"/admin/datasets/datasetversion/{version.pk}/change/", {"description": "API outage"}
    )

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.description == "API outage" and version.status == "failed"


def test_task_filters(admin_client_logged_in, ready_version):
    tasks = admin_client_logged_in.get("/admin/datasets/datasettask/?status__exact=completed&type__exact=build")
    assert tasks.status_code == 200 and str(DatasetTask.objects.get().pk) in tasks.content.decode()
    assert admin_client_logged_in.get("/admin/datasets/datasetversion/?status__exact=ready").status_code == 200


def test_versions_need_staff(client, user, ready_version):
    client.force_login(user)

    assert client.get("/admin/datasets/datasetversion/").status_code == 302
    assert DatasetVersion.objects.count() == 1
