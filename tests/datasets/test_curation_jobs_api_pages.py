"""Curation tasks over the API and the pages: queue (202, or 400 with no row), read,
cancel, resume, the task page with its polled progress, the task list's link, and the
label import as a background task (upload stored, import run, idempotent)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus
from datasets.services import import_jobs
from labeling.models import Label, LabelSource
from tests.datasets.cleaning_factories import video

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/curation/tasks"
SHORT_TITLE = {"type": "cleaning", "params": {"rule": "short_title", "params": {"min_length": 3}}}


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.DATA_DIR = tmp_path


@pytest.fixture
def admin(make_user):
    return make_user("boss", group="admins")


@pytest.fixture
def admin_api(admin):
    client = APIClient()
    client.force_authenticate(admin)
    return client


@pytest.fixture
def queued(monkeypatch):
    """Queued task ids instead of Celery messages."""
    sent: list = []
    monkeypatch.setattr(services.curation_jobs, "curation_enqueue", lambda task_id, celery_id: sent.append(task_id))
    return sent


def test_post_queues_a_task_and_answers_202(admin_api, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(TASKS, SHORT_TITLE, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["type"] == "cleaning" and body["status"] == "pending"
    assert queued == [DatasetTask.objects.get().pk]
    assert str(queued[0]) == body["task_id"]


@pytest.mark.parametrize("payload", [
    {"type": "nonsense"},
    {"type": "cleaning", "params": {"rule": "short_title", "params": {"min_length": -5}}},
    {"type": "cleaning", "params": "not an object"},
    {"type": "augmentation", "params": {}},  # needs a dataset version
    {"type": "cleaning", "params": {"rule": "short_title"}, "dataset_id": "8a4d4a4e-2c1f-4b2a-9d3e-0f5a6b7c8d9e"},
])
def test_bad_input_is_a_400_and_writes_nothing(admin_api, queued, payload):
    response = admin_api.post(TASKS, payload, format="json")
    assert response.status_code == 400, response.json()
    assert not DatasetTask.objects.exists() and not queued


def test_only_admins_queue_and_anyone_in_the_team_reads(api_client, admin_api, queued):
    assert api_client.post(TASKS, SHORT_TITLE, format="json").status_code == 403
    task_id = admin_api.post(TASKS, SHORT_TITLE, format="json").json()["task_id"]
    response = api_client.get(f"{TASKS}/{task_id}")
    assert response.status_code == 200 and response.json()["progress"]["current_step"] == "initialized"
    assert api_client.get(f"{TASKS}/not-a-uuid").status_code == 404
    assert api_client.post(f"{TASKS}/{task_id}/cancel").status_code == 403


def test_cancel_then_resume_over_the_api(admin_api, queued):
    task_id = admin_api.post(TASKS, SHORT_TITLE, format="json").json()["task_id"]
    response = admin_api.post(f"{TASKS}/{task_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert admin_api.post(f"{TASKS}/{task_id}/cancel").status_code == 400
    response = admin_api.post(f"{TASKS}/{task_id}/resume")
    assert response.status_code == 202 and response.json()["status"] == "pending"


def test_a_build_task_is_not_a_curation_task(admin_api):
    build = DatasetTask.objects.create()  # type build
    assert admin_api.get(f"{TASKS}/{build.pk}").status_code == 404
    assert admin_api.post(f"{TASKS}/{build.pk}/cancel").status_code == 404


def test_the_panel_task_list_serializes_curation_tasks(admin_api, queued):
    video(1, "x")
    task = services.curation_task_queue(task_type="cleaning", params={"rule": "short_title"}, enqueue=False)
    services.curation_task_run(task.pk)
    response = admin_api.get("/api/v1/tasks")
    assert response.status_code == 200
    listed, = response.json()["tasks"]
    assert listed["type"] == "cleaning" and listed["status"] == "completed"
    assert listed["result"]["excluded"] == 1 and listed["dataset_id"] is None


def test_the_task_page_polls_while_running_and_stops_when_finished(client, admin, queued):
    client.force_login(admin)
    video(1, "x")
    task = services.curation_task_queue(task_type="cleaning", params={"rule": "short_title"}, enqueue=False)
    page = client.get(reverse("datasets:curation-task", args=[task.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-polling="true"' in html and "short_title" in html and 'data-testid="cancel-task"' in html

    services.curation_task_run(task.pk)
    progress = client.get(reverse("datasets:curation-task-progress", args=[task.pk]), HTTP_HX_REQUEST="true")
    assert progress.status_code == 286  # htmx stops polling
    html = progress.content.decode()
    assert 'data-polling="false"' in html and "Excluded" in html and "100.0%" in html

    index = client.get(reverse("datasets:index")).content.decode()
    assert reverse("datasets:curation-task", args=[task.pk]) in index


def test_the_task_page_shows_a_failure_and_offers_a_rerun(client, admin):
    client.force_login(admin)
    task = DatasetTask.objects.create(type="deduplication", status=DatasetTaskStatus.FAILED,
                                      error="scanning: no vectors for model m")
    html = client.get(reverse("datasets:curation-task", args=[task.pk])).content.decode()
    assert "scanning: no vectors for model m" in html and 'data-testid="resume-task"' in html


def test_cancel_from_the_page(client, admin, queued):
    client.force_login(admin)
    task = services.curation_task_queue(task_type="cleaning", params={"rule": "short_title"}, enqueue=False)
    response = client.post(reverse("datasets:curation-task-cancel", args=[task.pk]))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.CANCELLED


def test_pages_404_for_unknown_and_build_tasks(client, admin):
    client.force_login(admin)
    build = DatasetTask.objects.create()
    assert client.get(reverse("datasets:curation-task", args=[build.pk])).status_code == 404


# --- label import as a task -----------------------------------------------------------


def label_lines(aids, *, bad: bool = False) -> bytes:
    rows = [{"aid": aid, "user": f"old{aid % 2}", "label": aid % 3 == 0, "created_at": "2024-03-01T12:00:00+08:00"}
            for aid in aids]
    lines = [json.dumps(row) for row in rows]
    if bad:
        lines.append(json.dumps({"aid": 999_999, "user": "old0", "label": True, "created_at": "2024-03-01"}))
    return ("\n".join(lines) + "\n").encode()


def test_a_background_label_import_stores_the_upload_and_imports_it_idempotently(admin_api, queued):
    for aid in range(1, 6):
        video(aid, f"video {aid}")
    upload = SimpleUploadedFile("old.jsonl", label_lines(range(1, 6), bad=True))
    response = admin_api.post("/api/v1/curation/label-import", {"file": upload, "atomic": "false"},
                              format="multipart")
    assert response.status_code == 202, response.json()
    task_id = response.json()["task_id"]
    params = DatasetTask.objects.get(pk=task_id).params
    assert (import_jobs.label_upload_dir() / params["upload"]).is_file() and params["atomic"] is False

    task = services.curation_task_run(task_id)
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.result["written"] == 5 and task.result["rejected"] == 1
    assert task.result["row_errors"][0]["line"] == 6
    assert Label.objects.filter(source=LabelSource.IMPORT).count() == 5
    assert task.total == 6 and task.percentage == 100.0

    with pytest.raises(ValidationError):  # a completed task does not resume
        services.curation_task_resume(task_id, enqueue=False)


def test_the_same_file_imported_twice_writes_no_second_label(admin_api, queued):
    for aid in range(1, 4):
        video(aid, f"video {aid}")
    results = []
    for _ in range(2):
        upload = SimpleUploadedFile("old.jsonl", label_lines(range(1, 4)))
        task_id = admin_api.post("/api/v1/curation/label-import", {"file": upload}, format="multipart").json()["task_id"]
        results.append(services.curation_task_run(task_id).result)
    assert results[0]["written"] == 3 and results[1]["written"] == 0 and results[1]["already_present"] == 3
    assert Label.objects.count() == 3


def test_a_label_import_with_an_unknown_format_is_refused(admin_api, queued):
    upload = SimpleUploadedFile("old.txt", b"aid,user\n")
    response = admin_api.post("/api/v1/curation/label-import", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert not DatasetTask.objects.exists()


def test_the_labels_import_api_sends_background_uploads_to_the_task_endpoint(admin_api):
    response = admin_api.post("/api/v1/labels/import?background=1", {"file": io.BytesIO(b"")}, format="multipart")
    assert response.status_code == 307
    assert response["Location"] == "/api/v1/curation/label-import"


def test_the_background_import_page_queues_and_redirects(client, admin, queued):
    client.force_login(admin)
    assert client.get(reverse("datasets:curation-label-import")).status_code == 200
    upload = SimpleUploadedFile("old.csv", b"aid,user,label,created_at\n")
    response = client.post(reverse("datasets:curation-label-import"), {"file": upload, "atomic": "on"})
    task = DatasetTask.objects.get(type="import")
    assert response.status_code == 302 and response["Location"] == reverse("datasets:curation-task", args=[task.pk])
    assert task.params["format"] == "csv" and task.params["atomic"] is True


def test_the_admin_import_page_sends_a_large_upload_to_the_background_page(client, make_user, monkeypatch):
    from labeling import admin_label_import

    client.force_login(make_user("staffboss", group="admins", is_staff=True))
    monkeypatch.setattr(admin_label_import, "BACKGROUND_IMPORT_BYTES", 100)
    upload = SimpleUploadedFile("old.jsonl", label_lines(range(1, 20)))
    response = client.post("/admin/labeling/label/import/", {"file": upload})
    assert response.status_code == 307
    assert response["Location"] == reverse("datasets:curation-label-import")
    assert not Label.objects.exists()
