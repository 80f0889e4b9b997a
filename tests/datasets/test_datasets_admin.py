"""The datasets admin: every page loads; vectors, versions and tasks are read-only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersion, DatasetVersionItem, Embedding, EmbeddingModel
from tests.datasets.panel_fixtures import (  # noqa: F401 (fixtures)
    build,
    corpus,
    embedding_model,
    make_tasks,
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


def test_no_version_can_be_changed_not_even_a_failed_one(admin_client_logged_in, embedding_model):
    (version,) = make_versions(1, embedding_model, status="failed")

    page = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{version.pk}/change/").content.decode()
    assert 'name="_save"' not in page

    response = admin_client_logged_in.post(
        f"/admin/datasets/datasetversion/{version.pk}/change/", {"description": "API outage"}
    )

    assert response.status_code == 403
    version.refresh_from_db()
    assert version.description == "" and version.status == "failed"


def test_deleting_a_version_goes_through_the_service(admin_client_logged_in, ready_version):
    confirm = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{ready_version.pk}/delete/")
    assert confirm.status_code == 200
    assert "10" in confirm.content.decode()  # a summary of the cascaded items, not a list of them

    response = admin_client_logged_in.post(f"/admin/datasets/datasetversion/{ready_version.pk}/delete/",
                                           {"post": "yes"})

    assert response.status_code == 302
    assert not DatasetVersion.objects.filter(pk=ready_version.pk).exists()
    assert not DatasetVersionItem.objects.exists()
    assert Embedding.objects.count() == 10  # vectors are shared and kept


def test_deleting_a_version_being_built_is_refused_with_a_message(admin_client_logged_in, embedding_model):
    (version,) = make_versions(1, embedding_model, status="building")
    make_tasks(1, status=DatasetTaskStatus.PENDING, version=version)

    response = admin_client_logged_in.post(f"/admin/datasets/datasetversion/{version.pk}/delete/",
                                           {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert "being built" in response.content.decode()
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_bulk_delete_action_is_not_offered_for_versions(admin_client_logged_in, ready_version):
    page = admin_client_logged_in.get("/admin/datasets/datasetversion/").content.decode()
    assert "delete_selected" not in page


def test_datasets_cannot_be_deleted_in_the_admin(admin_client_logged_in, ready_version):
    url = f"/admin/datasets/dataset/{ready_version.dataset_id}/delete/"
    assert admin_client_logged_in.post(url, {"post": "yes"}).status_code == 403
    assert DatasetVersion.objects.filter(pk=ready_version.pk).exists()


def test_changelists_defer_requested_aids(admin_client_logged_in, ready_version):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client_logged_in.get("/admin/datasets/datasetversion/").status_code == 200
        assert admin_client_logged_in.get(f"/admin/datasets/dataset/{ready_version.dataset_id}/change/").status_code == 200
    version_selects = [q["sql"] for q in queries if 'FROM "datasets_datasetversion"' in q["sql"]]
    assert version_selects and all('"requested_aids"' not in sql for sql in version_selects)


def test_task_filters(admin_client_logged_in, ready_version):
    tasks = admin_client_logged_in.get("/admin/datasets/datasettask/?status__exact=completed&type__exact=build")
    assert tasks.status_code == 200 and str(DatasetTask.objects.get().pk) in tasks.content.decode()
    assert admin_client_logged_in.get("/admin/datasets/datasetversion/?status__exact=ready").status_code == 200


def test_versions_need_staff(client, user, ready_version):
    client.force_login(user)

    assert client.get("/admin/datasets/datasetversion/").status_code == 302
    assert DatasetVersion.objects.count() == 1
