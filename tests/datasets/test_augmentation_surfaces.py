"""Augmentation through its surfaces: the API (queue, counts), the version page's panel,
and ``manage.py augment_dataset``; the task runs through the curation job lifecycle."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from datasets.models import AugmentedItem, DatasetTask, DatasetTaskStatus, DatasetTaskType
from datasets.services.curation_jobs import curation_task_run
from tests.datasets.augmentation_factories import text_version

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def version():
    return text_version(10)


@pytest.fixture
def admin(make_user):
    return make_user("boss", group="admins")


@pytest.fixture
def admin_api(admin):
    client = APIClient()
    client.force_authenticate(admin)
    return client


def test_api_queues_a_task_that_the_job_runs_then_the_counts_show(version, admin_api, registry_file,
                                                                embedding_server):
    response = admin_api.post(f"/api/v1/datasets/{version.pk}/augment",
                              {"kinds": ["title_only", "description_only"]}, format="json")
    assert response.status_code == 202, response.content
    task = DatasetTask.objects.get(pk=response.json()["task_id"])
    assert (task.type, task.status, task.dataset_version_id) == (DatasetTaskType.AUGMENTATION,
                                                                DatasetTaskStatus.PENDING, version.pk)
    assert task.params["kinds"] == ["title_only", "description_only"]

    done = curation_task_run(task.pk)

    assert done.status == DatasetTaskStatus.COMPLETED, done.error
    assert done.result["by_kind"] == {"title_only": 6, "description_only": 6}
    counts = admin_api.get(f"/api/v1/datasets/{version.pk}/augmented").json()
    assert counts["counts"] == {"character_noise": 0, "tag_shuffle": 0, "title_only": 6, "description_only": 6}
    assert counts["total"] == 12
    assert counts["tasks"][0]["task_id"] == str(task.pk) and counts["tasks"][0]["status"] == "completed"


@pytest.mark.parametrize("body", [
    {"kinds": ["back_translation"]},
    {"copies": 9},
    {"noise_rate": 2},
    {"kinds": "title_only"},
])
def test_api_bad_params_are_a_400_and_nothing_is_written(version, admin_api, body):
    response = admin_api.post(f"/api/v1/datasets/{version.pk}/augment", body, format="json")
    assert response.status_code == 400, response.content
    assert not DatasetTask.objects.filter(type=DatasetTaskType.AUGMENTATION).exists()


def test_api_refuses_an_unready_version_and_answers_404_for_an_unknown_one(admin_api):
    building = text_version(10, status="building")
    response = admin_api.post(f"/api/v1/datasets/{building.pk}/augment", {}, format="json")
    assert response.status_code == 400 and "not ready" in response.json()["detail"]
    assert admin_api.post("/api/v1/datasets/not-a-uuid/augment", {}, format="json").status_code == 404
    assert admin_api.get("/api/v1/datasets/00000000-0000-0000-0000-000000000000/augmented").status_code == 404
    assert not DatasetTask.objects.filter(type=DatasetTaskType.AUGMENTATION).exists()


def test_labelers_read_the_counts_but_cannot_augment(version, make_user):
    client = APIClient()
    client.force_authenticate(make_user("lab", group="labelers"))
    assert client.get(f"/api/v1/datasets/{version.pk}/augmented").status_code == 200
    assert client.post(f"/api/v1/datasets/{version.pk}/augment", {}, format="json").status_code == 403
    assert not DatasetTask.objects.exists()


def test_the_version_page_loads_the_panel_which_queues_a_task(version, admin):
    client = Client()
    client.force_login(admin)
    page = client.get(f"/datasets/versions/{version.pk}/")
    assert page.status_code == 200
    assert f'hx-get="/datasets/versions/{version.pk}/augmentation"' in page.content.decode()

    panel = client.get(f"/datasets/versions/{version.pk}/augmentation", **HTMX)
    assert panel.status_code == 200
    html = panel.content.decode()
    assert 'data-testid="augmentation-panel"' in html and "Augment train split" in html
    assert 'data-testid="augmented-total">0<' in html

    queued = client.post(f"/datasets/versions/{version.pk}/augmentation/queue",
                         {"kinds": ["tag_shuffle"], "copies": "2", "noise_rate": "0.05"}, **HTMX)
    assert queued.status_code == 200 and queued["HX-Redirect"] == f"/datasets/versions/{version.pk}/"
    task = DatasetTask.objects.get(type=DatasetTaskType.AUGMENTATION)
    assert task.params == {"kinds": ["tag_shuffle"], "copies": 2, "noise_rate": 0.05, "seed": 0}
    polling = client.get(f"/datasets/versions/{version.pk}/augmentation", **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' in polling and "Pending" in polling


def test_the_panel_form_shows_bad_input_and_writes_nothing(version, admin):
    client = Client()
    client.force_login(admin)
    response = client.post(f"/datasets/versions/{version.pk}/augmentation/queue",
                           {"kinds": [], "copies": "7", "noise_rate": "0.05"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="error-summary"' in html and "copies" in html
    assert not DatasetTask.objects.exists()


def test_labelers_see_the_counts_without_the_form(version, make_user):
    client = Client()
    client.force_login(make_user("lab", group="labelers"))
    html = client.get(f"/datasets/versions/{version.pk}/augmentation", **HTMX).content.decode()
    assert 'data-testid="augmented-counts"' in html and "<form" not in html
    response = client.post(f"/datasets/versions/{version.pk}/augmentation/queue", {"kinds": ["title_only"],
                                                                                   "copies": "1",
                                                                                   "noise_rate": "0.05"})
    assert response.status_code == 403
    assert not DatasetTask.objects.exists()


def test_the_command_augments_synchronously(version, registry_file, embedding_server, capsys):
    call_command("augment_dataset", str(version.pk), "--kinds", "title_only,tag_shuffle", "--copies", "1")
    assert AugmentedItem.objects.filter(version=version).count() == 12
    task = DatasetTask.objects.get(type=DatasetTaskType.AUGMENTATION)
    assert task.status == DatasetTaskStatus.COMPLETED
    with pytest.raises(CommandError, match="kinds"):
        call_command("augment_dataset", str(version.pk), "--kinds", "nonsense")
    with pytest.raises(CommandError, match="no dataset version"):
        call_command("augment_dataset", "00000000-0000-0000-0000-000000000000")
    assert DatasetTask.objects.filter(type=DatasetTaskType.AUGMENTATION).count() == 1
