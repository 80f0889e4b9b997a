"""The cleaning API and page: admins preview, run and revert; team members read; bad
input is a 400 naming the problem, with nothing written."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from datasets.models import DatasetTask, Exclusion
from tests.datasets.cleaning_factories import video

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus():
    video(1, "歌", "暂无简介")
    video(2, "初音ミクの歌", "ボカロ")
    video(3, "안녕하세요 노래", "설명")


@pytest.fixture
def admin_api(make_user):
    client = APIClient()
    client.force_authenticate(make_user("boss", group="admins"))
    return client


@pytest.fixture
def labeler_api(make_user):
    client = APIClient()
    client.force_authenticate(make_user("lab", group="labelers"))
    return client


def test_api_preview_run_list_revert(corpus, admin_api):
    body = {"rule": "language", "params": {"languages": ["zh", "ja", "en"]}}
    preview = admin_api.post("/api/v1/cleaning/preview", body, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["would_exclude"] == 1
    assert preview.json()["examples"][0]["aid"] == 3
    assert not Exclusion.objects.exists()

    run = admin_api.post("/api/v1/cleaning/run", body, format="json")
    assert run.status_code == 201, run.content
    assert run.json()["excluded"] == 1

    listed = admin_api.get("/api/v1/exclusions", {"rule": "language"})
    assert listed.status_code == 200
    assert listed.json()["count"] == 1 and listed.json()["results"][0]["aid"] == 3
    counts = {row["rule"]: row["active"] for row in listed.json()["counts_by_rule"]}
    assert counts["language"] == 1 and counts["short_title"] == 0

    reverted = admin_api.post("/api/v1/exclusions/revert", {"task_id": run.json()["task_id"]}, format="json")
    assert reverted.status_code == 200 and reverted.json() == {"reverted": 1}
    assert admin_api.get("/api/v1/exclusions").json()["count"] == 0
    assert admin_api.get("/api/v1/exclusions", {"state": "reverted"}).json()["count"] == 1


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/cleaning/run", {"rule": "nope"}, "rule"),
    ("/api/v1/cleaning/run", {"rule": "short_title", "params": {"min_length": 0}}, "params.min_length"),
    ("/api/v1/cleaning/run", {"rule": "custom", "params": {"expression": "title = "}}, "params.expression"),
    ("/api/v1/cleaning/run", {"rule": "short_title", "params": "x"}, "params"),
    ("/api/v1/cleaning/preview", {"rule": "banned_words"}, "params.words"),
    ("/api/v1/exclusions/revert", {}, "non_field_errors"),
    ("/api/v1/exclusions/revert", {"aid": 0}, "aid"),
])
def test_api_bad_input_is_400_and_writes_nothing(corpus, admin_api, path, body, field):
    response = admin_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert not Exclusion.objects.exists() and not DatasetTask.objects.exists()


def test_api_custom_rule_error_names_the_position(corpus, admin_api):
    response = admin_api.post("/api/v1/cleaning/preview",
                              {"rule": "custom", "params": {"expression": "titel = 'x'"}}, format="json")
    assert response.status_code == 400
    assert "at position 1: expected a field" in response.content.decode()


def test_team_members_read_but_do_not_run(corpus, labeler_api):
    assert labeler_api.get("/api/v1/exclusions").status_code == 200
    assert labeler_api.post("/api/v1/cleaning/run", {"rule": "short_title"}, format="json").status_code == 403
    assert labeler_api.post("/api/v1/cleaning/preview", {"rule": "short_title"}, format="json").status_code == 403
    assert not Exclusion.objects.exists()


def test_page_preview_run_and_revert(corpus, make_user):
    client = Client()
    client.force_login(make_user("boss", group="admins"))
    page = client.get("/datasets/cleaning/")
    assert page.status_code == 200 and "Run a rule" in page.content.decode()
    # Parameters are labelled by their own name, not the rule-prefixed field name.
    assert ">Min length:</label>" in page.content.decode() and "Short title-min length" not in page.content.decode()

    form = {"rule": "short_title", "short_title-min_length": "2"}
    preview = client.post("/datasets/cleaning/preview", form, HTTP_HX_REQUEST="true")
    html = preview.content.decode()
    assert preview.status_code == 200 and "1 video(s) would be excluded" in html and "歌" in html
    assert not Exclusion.objects.exists()

    bad = client.post("/datasets/cleaning/preview", {"rule": "custom", "custom-expression": "title ="},
                      HTTP_HX_REQUEST="true")
    assert bad.status_code == 200 and "at position 8" in bad.content.decode()

    run = client.post("/datasets/cleaning/run", form)
    assert run.status_code == 302
    page = client.get("/datasets/cleaning/").content.decode()
    assert 'data-aid="1"' in page and "excluded 1 video(s)" in page

    client.post("/datasets/cleaning/revert", {"aid": "1"})
    assert not Exclusion.objects.filter(reverted_at__isnull=True).exists()
    assert "Reverted 1 exclusion(s)." in client.get("/datasets/cleaning/").content.decode()


def test_page_for_team_members_has_no_run_form(corpus, make_user):
    client = Client()
    client.force_login(make_user("lab", group="labelers"))
    page = client.get("/datasets/cleaning/")
    assert page.status_code == 200 and "Run a rule" not in page.content.decode()
    assert client.post("/datasets/cleaning/run", {"rule": "short_title"}).status_code == 403
    assert not Exclusion.objects.exists()
