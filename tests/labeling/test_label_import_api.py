"""``POST /api/v1/labels/import``: file or JSON list, all or nothing by default, admins only."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from labeling.api_label_import import MAX_LISTED_ERRORS
from labeling.models import Label, LabelSource, VideoConsensus
from tests.labeling.factories import AdminUserFactory, LabelerFactory, ReviewerFactory, UserFactory
from tests.labeling.label_import_support import at, csv_file, jsonl, row, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groups")]

URL = "/api/v1/labels/import"


@pytest.fixture
def videos(make_video):
    return [make_video(aid=aid) for aid in (170001, 170002)]


@pytest.fixture
def admin_api():
    client = APIClient()
    client.force_authenticate(AdminUserFactory())
    return client


def post_json(client, body):
    return client.post(URL, json.dumps(body), content_type="application/json")


def imported_count() -> int:
    return Label.objects.filter(source=LabelSource.IMPORT).count()


def test_a_good_file_is_imported_201_and_a_reimport_is_200(admin_api, videos):
    content = jsonl(row(170001, "alice", True, at(0)), row(170002, "bob", False, at(1)))

    response = admin_api.post(URL, {"file": upload("labels.jsonl", content)}, format="multipart")

    assert response.status_code == 201
    assert response.json() == {
        "rows": 2, "written": 2, "already_present": 0, "users_created": 2, "rejected": 0, "row_errors": [],
        "row_errors_omitted": 0, "dry_run": False, "atomic": True, "rolled_back": False,
    }
    again = admin_api.post(URL, {"file": upload("labels.jsonl", content)}, format="multipart")
    assert again.status_code == 200
    assert (again.json()["written"], again.json()["already_present"]) == (0, 2)
    assert imported_count() == 2
    assert VideoConsensus.objects.get(video__aid=170001).positive_votes == 1


def test_a_bad_row_is_a_400_listing_it_and_nothing_is_written(admin_api, videos):
    content = csv_file(f"170001,alice,true,{at()}", "170001,bob,maybe,2024-01-01", "99,carol,yes,2024-01-01")

    response = admin_api.post(URL, {"file": upload("labels.csv", content)}, format="multipart")

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "2 of 3 rows rejected; nothing was written (atomic)"
    assert body["row_errors"] == [
        {"line": 3, "message": 'label: must be true/false, 1/0 or yes/no (got "maybe")'},
        {"line": 4, "message": "aid: no video with aid 99 (import the video first)"},
    ]
    assert body["rolled_back"] is True
    assert not Label.objects.exists()
    assert not get_user_model().objects.filter(username="alice").exists()


def test_atomic_false_writes_the_good_rows_and_lists_the_bad_ones(admin_api, videos):
    content = jsonl(row(170001, "alice"), row(170002, "bob", "maybe"))
    data = {"file": upload("labels.jsonl", content), "atomic": "false"}

    response = admin_api.post(URL, data, format="multipart")

    assert response.status_code == 201
    assert (response.json()["written"], response.json()["rejected"]) == (1, 1)
    assert response.json()["row_errors"] == [{"line": 2, "message": 'label: must be true/false, 1/0 or yes/no (got "maybe")'}]
    assert imported_count() == 1


def test_a_json_list_with_options(admin_api, videos):
    body = {"labels": [row(170001, "alice"), {"aid": 170002, "user": "bob", "label": "no"}], "atomic": False}

    response = post_json(admin_api, body)

    assert response.status_code == 201
    assert response.json()["row_errors"] == [{"line": 2, "message": "created_at: is required"}]
    assert imported_count() == 1

    dry = post_json(admin_api, {"labels": [row(170002, "bob", False, at(3))], "dry_run": True})
    assert dry.status_code == 200
    assert (dry.json()["written"], dry.json()["rolled_back"]) == (1, True)
    assert imported_count() == 1


def test_errors_listed_are_capped_and_the_rest_counted(admin_api, videos):
    body = {"labels": [row(99, "alice", True, at(minute)) for minute in range(MAX_LISTED_ERRORS + 20)]}

    response = post_json(admin_api, body)

    assert response.status_code == 400
    assert len(response.json()["row_errors"]) == MAX_LISTED_ERRORS
    assert response.json()["row_errors_omitted"] == 20
    assert response.json()["rejected"] == MAX_LISTED_ERRORS + 20


@pytest.mark.parametrize(
    ("data", "format", "detail"),
    [
        ({}, "multipart", "file: upload a file"),
        ({"labels": "nope"}, "json", "labels: must be a list"),
        ({"rows": []}, "json", 'labels: send JSON {"labels": [...]}'),
        ({"file": upload("labels.json", b"[]")}, "multipart", "cannot tell the format of 'labels.json'"),
        ({"file": upload("labels.csv", b"aid,user\n1,a\n")}, "multipart", r"required column(s) label, created_at"),
        ({"file": upload("labels.jsonl", b"x\n")}, "multipart", "no line of the file is valid JSON"),
        ({"file": upload("labels.jsonl", b""), "format": "xml"}, "multipart", "format"),
        ({"file": upload("labels.jsonl", b""), "atomic": "perhaps"}, "multipart", "atomic"),
    ],
)
def test_bad_requests_are_400_with_detail_and_write_nothing(admin_api, videos, data, format, detail):
    if format == "json":
        response = post_json(admin_api, data)
    else:
        response = admin_api.post(URL, data, format="multipart")

    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert not Label.objects.exists()


def test_only_admins_may_import(videos):
    body = {"labels": [row(170001)]}
    for user in (LabelerFactory(), ReviewerFactory(), UserFactory(is_staff=True)):
        client = APIClient()
        client.force_authenticate(user)
        assert post_json(client, body).status_code == 403
    assert post_json(APIClient(), body).status_code in (401, 403)
    assert not Label.objects.exists()
