"""The admin's "Import labels" page on the Label change list."""

from __future__ import annotations

import pytest

from labeling.models import Label, LabelSource
from tests.labeling.factories import AdminUserFactory, ReviewerFactory
from tests.labeling.label_import_support import at, csv_file, jsonl, row, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groups")]

CHANGELIST = "/admin/labeling/label/"
PAGE = "/admin/labeling/label/import/"


@pytest.fixture
def videos(make_video):
    return [make_video(aid=aid) for aid in (170001, 170002)]


@pytest.fixture
def admin_client(client):
    client.force_login(AdminUserFactory())
    return client


def test_the_change_list_links_the_page_for_admins_only(admin_client, client):
    body = admin_client.get(CHANGELIST).content.decode()
    assert f'href="{PAGE}"' in body and "Import labels" in body

    client.force_login(ReviewerFactory(is_staff=True))  # may view labels, may not import
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert PAGE not in response.content.decode()
    assert client.get(PAGE).status_code == 403


def test_upload_writes_good_rows_and_lists_bad_ones_with_their_lines(admin_client, videos):
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    assert 'type="file"' in page.content.decode() and "All or nothing" in page.content.decode()

    content = jsonl(row(170001, "alice", True, at(0)), row(170009, "bob"))
    response = admin_client.post(PAGE, {"file": upload("old.jsonl", content), "format": ""})

    body = response.content.decode()
    assert response.status_code == 200
    assert '<p id="import-summary">Read 2 rows: 1 labels written, 0 already present, 1 users created, 1 rejected</p>' in body
    assert "<tr><td>2</td><td>aid: no video with aid 170009 (import the video first)</td></tr>" in body
    assert list(Label.objects.values_list("source", "video__aid")) == [(LabelSource.IMPORT, 170001)]

    again = admin_client.post(PAGE, {"file": upload("old.jsonl", content), "format": ""})
    assert "0 labels written, 1 already present" in again.content.decode()
    assert Label.objects.count() == 1


def test_all_or_nothing_and_dry_run_write_nothing(admin_client, videos):
    content = csv_file(f"170001,alice,yes,{at()}", "170002,bob,perhaps,2024-01-01")

    atomic = admin_client.post(PAGE, {"file": upload("old.csv", content), "format": "", "atomic": "on"})
    assert "a row was rejected, so nothing was written" in atomic.content.decode()

    good = csv_file(f"170001,alice,yes,{at()}")
    dry = admin_client.post(PAGE, {"file": upload("old.csv", good), "format": "", "dry_run": "on"})
    assert "1 labels would be written" in dry.content.decode()
    assert not Label.objects.exists()


def test_a_file_that_cannot_be_read_is_a_400_on_the_page(admin_client, videos):
    content = b"aid,name,label,created_at\n170001,alice,yes,2024-01-01\n"

    response = admin_client.post(PAGE, {"file": upload("old.csv", content), "format": ""})

    assert response.status_code == 400
    assert "required column(s) user missing" in response.content.decode()
    assert not Label.objects.exists()
