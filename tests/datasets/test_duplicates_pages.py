"""The duplicates page, API and command: admins scan and decide, team members read, bad
input is a clear error with nothing written, a page of groups costs the same queries
for 3 groups as for 25."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from datasets.models import DatasetTask, DatasetTaskType, DuplicateGroup, Exclusion
from datasets.services.duplicates import deduplication_run
from labeling.models import Video
from tests.datasets.cleaning_factories import video
from tests.datasets.curation_support import RecordingProgress
from tests.datasets.duplicate_factories import dedup_task, distinct_videos, embed, embedding_model, planted_vectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def scanned():
    """An exact group (aids 1, 2, 3) and an exact pair (10, 11), found by a finished task."""
    for aid in (3, 1, 2):
        video(aid, "千本桜", "原曲")
    video(10, "Tell Your World", "")
    video(11, "Tell Your World", "")
    task = dedup_task({"kinds": ["exact"]})
    task.result = deduplication_run(task, RecordingProgress())
    task.status = "completed"
    task.save()
    return task


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("boss", group="admins"))
    return client


@pytest.fixture
def labeler_client(client, make_user):
    client.force_login(make_user("lab", group="labelers"))
    return client


def test_page_lists_the_latest_scan_groups(scanned, labeler_client):
    response = labeler_client.get("/datasets/duplicates/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="group"') == 2
    assert "av1" in body and "千本桜" in body and "av11" in body
    assert 'data-testid="start-scan"' not in body  # readers do not scan


def test_labelers_cannot_decide(scanned, labeler_client):
    group = DuplicateGroup.objects.get(task=scanned, size=3)
    response = labeler_client.post(f"/datasets/duplicates/groups/{group.pk}/resolve", {"keep": []})
    assert response.status_code == 403
    assert not Exclusion.objects.exists()


def test_resolve_swaps_the_group(scanned, admin_client):
    group = DuplicateGroup.objects.get(task=scanned, size=3)
    keep = Video.objects.get(aid=1).pk
    response = admin_client.post(f"/datasets/duplicates/groups/{group.pk}/resolve", {"keep": [keep]},
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith(f'<article class="card duplicate-group" id="group-{group.pk}"')
    assert 'data-testid="resolved"' in body
    assert set(Exclusion.objects.values_list("video__aid", flat=True)) == {2, 3}


def test_resolve_keeping_nobody_is_refused(scanned, admin_client):
    group = DuplicateGroup.objects.get(task=scanned, size=3)
    response = admin_client.post(f"/datasets/duplicates/groups/{group.pk}/resolve", {}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "keep at least one" in response.content.decode()
    assert not Exclusion.objects.exists()


def test_keep_lowest_everywhere(scanned, admin_client):
    response = admin_client.post(f"/datasets/duplicates/tasks/{scanned.pk}/keep-lowest", follow=True)
    assert response.status_code == 200
    assert "excluded 3 video(s)" in response.content.decode()
    assert set(Exclusion.objects.values_list("video__aid", flat=True)) == {2, 3, 11}


def test_scan_form_errors_name_the_field_and_write_nothing(admin_client):
    before = DatasetTask.objects.count()
    response = admin_client.post("/datasets/duplicates/scan", {"kinds": ["near"], "threshold": "0.05"})
    assert response.status_code == 400
    assert "near duplicates need an embedding model key" in response.content.decode()
    assert DatasetTask.objects.count() == before


def test_scan_queues_a_deduplication_task(admin_client, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr("datasets.services.curation_jobs.curation_enqueue", lambda *args: queued.append(args))
    video(1, "同じ", "")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/datasets/duplicates/scan", {"kinds": ["exact"]})
    assert response.status_code == 302
    task = DatasetTask.objects.get(type=DatasetTaskType.DEDUPLICATION)
    assert task.params["kinds"] == ["exact"] and task.status == "pending"
    assert response["Location"].endswith(f"?task={task.pk}")


def _page_queries(client, task) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/datasets/duplicates/?task={task.pk}")
    assert response.status_code == 200
    return len(captured)


def test_page_queries_do_not_grow_with_groups(labeler_client):
    few = dedup_task({"kinds": ["exact"]})
    for aid in range(3):
        video(100 + aid, f"pair {aid}", "")
        video(200 + aid, f"pair {aid}", "")
    deduplication_run(few, RecordingProgress())
    many = dedup_task({"kinds": ["exact"]})
    for aid in range(40):
        video(1000 + aid, f"triple {aid}", "")
        video(2000 + aid, f"triple {aid}", "")
        video(3000 + aid, f"triple {aid}", "")
    deduplication_run(many, RecordingProgress())
    assert _page_queries(labeler_client, few) == _page_queries(labeler_client, many)


# --- API ---------------------------------------------------------------------------------


def test_api_lists_and_resolves(scanned, make_user):
    api = APIClient()
    api.force_authenticate(make_user("boss", group="admins"))
    listed = api.get(f"/api/v1/duplicates/tasks/{scanned.pk}/groups")
    assert listed.status_code == 200, listed.content
    assert listed.json()["count"] == 2
    first = listed.json()["results"][0]
    assert first["size"] == 3 and [m["aid"] for m in first["members"]] == [1, 2, 3]

    keep = first["members"][1]["video_id"]
    resolved = api.post(f"/api/v1/duplicates/groups/{first['id']}/resolve", {"keep_video_ids": [keep]}, format="json")
    assert resolved.status_code == 200, resolved.content
    assert {m["aid"]: m["keep"] for m in resolved.json()["members"]} == {1: False, 2: True, 3: False}

    bad = api.post(f"/api/v1/duplicates/groups/{first['id']}/resolve", {"keep_video_ids": [999999]}, format="json")
    assert bad.status_code == 400 and "not in group" in bad.content.decode()
    assert api.get(f"/api/v1/duplicates/tasks/{scanned.pk}/groups", {"unresolved": "true"}).json()["count"] == 1


def test_api_decisions_need_an_admin(scanned, make_user):
    api = APIClient()
    api.force_authenticate(make_user("lab", group="labelers"))
    group = DuplicateGroup.objects.get(task=scanned, size=3)
    assert api.get(f"/api/v1/duplicates/tasks/{scanned.pk}/groups").status_code == 200
    assert api.post(f"/api/v1/duplicates/groups/{group.pk}/resolve", {"keep_video_ids": [1]},
                    format="json").status_code == 403
    assert api.post(f"/api/v1/duplicates/tasks/{scanned.pk}/keep-lowest").status_code == 403


# --- command -----------------------------------------------------------------------------


def test_command_finds_near_duplicates(capsys):
    model = embedding_model()
    vectors, _ = planted_vectors(2, 3, 10)
    embed(model, distinct_videos(len(vectors)), vectors)
    call_command("find_duplicates", "--kinds", "exact,near", "--model", model.key, "--threshold", "0.05")
    out = capsys.readouterr().out
    assert "0 exact group(s), 2 near group(s) from 6 pair(s) over 16 video(s)" in out
    task = DatasetTask.objects.get(type=DatasetTaskType.DEDUPLICATION)
    assert task.status == "completed" and DuplicateGroup.objects.filter(task=task).count() == 2


def test_command_reports_bad_params():
    with pytest.raises(CommandError, match="threshold: must be a cosine distance"):
        call_command("find_duplicates", "--kinds", "near", "--model", "x", "--threshold", "0.9")
    assert not DatasetTask.objects.exists()


def test_admin_shows_groups_with_their_members(scanned, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-for-tests-1"))
    group = DuplicateGroup.objects.get(task=scanned, size=3)
    assert client.get("/admin/datasets/duplicategroup/").status_code == 200
    page = client.get(f"/admin/datasets/duplicategroup/{group.pk}/change/")
    assert page.status_code == 200 and "千本桜" in page.content.decode()
