from __future__ import annotations

import functools
import io
import json
from datetime import datetime, timezone as dt_timezone

import pytest
from django.contrib import admin as django_admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.urls import path
from rest_framework.test import APIRequestFactory, force_authenticate

from labeling.admin_import import import_view
from labeling.api_import import VideoImportApi
from labeling.models import Video
from labeling.video_import import ImportFileError, import_video_records, import_videos, resolve_format
from tests.labeling.factories import AdminUserFactory, LabelerFactory, ReviewerFactory, UserFactory, VideoFactory

# Group permissions (admins may import) come from the bootstrap, as in production.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groups")]


def jsonl(*records) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records).encode()


def record(aid: int, **extra) -> dict:
    return {"aid": aid, "title": f"【洛天依原创】歌{aid}", **extra}


GOOD_BILIBILI_RECORD = {
    "aid": 170001,
    "bvid": "BV17x411w7KC",
    "title": " 【洛天依原创】夜航船 ",
    "desc": "作词：某人",
    "tags": ["洛天依", {"tag_name": "VOCALOID"}, " 原创曲 "],
    "owner": {"mid": 12345, "name": "夜航P"},
    "pubdate": 1700000000,
    "duration": "3:45",
    "pic": "//i0.hdslb.com/bfs/archive/abc.jpg",
    "stat": {"view": 10},
}


# --- parsing -----------------------------------------------------------------------------


def test_jsonl_with_bilibili_field_names_is_imported():
    other_record = record(2, tags="a,b", published_at="2024-05-01T12:00:00+08:00")

    result = import_videos(source=jsonl(GOOD_BILIBILI_RECORD, other_record), format="jsonl")

    assert (result.rows, result.created, result.updated, result.rejected, result.errors) == (2, 2, 0, 0, [])
    video = Video.objects.get(aid=170001)
    assert video.bvid == "BV17x411w7KC"
    assert video.title == "【洛天依原创】夜航船"
    assert video.description == "作词：某人"
    assert video.tags == "洛天依,VOCALOID,原创曲"
    assert (video.uploader_mid, video.uploader_name) == (12345, "夜航P")
    assert video.published_at == datetime.fromtimestamp(1700000000, tz=dt_timezone.utc)
    assert video.duration == 225
    assert video.cover_url == "https://i0.hdslb.com/bfs/archive/abc.jpg"
    assert video.raw == GOOD_BILIBILI_RECORD  # untouched, extra keys included
    other = Video.objects.get(aid=2)
    assert other.tags == "a,b"
    assert other.published_at == datetime(2024, 5, 1, 4, 0, tzinfo=dt_timezone.utc)


def test_csv_with_header_aliases_and_multiline_fields():
    content = (
        "aid,bvid,title,desc,tags,mid,owner.name,pubdate,duration,pic,extra\n"
        '101,BV1aaaaaaaaa,【言和】歌一,"第一行\n第二行","言和,VOCALOID",7,某P,2024-01-02 03:04:05,200,https://i0.hdslb.com/a.jpg,x\n'
        '\n'
        '102,,歌二,,"[""乐正绫"", ""UTAU""]",,,,,,\n'
    ).encode()

    result = import_videos(source=content, filename="videos.csv")

    assert (result.rows, result.created, result.errors) == (2, 2, [])
    first = Video.objects.get(aid=101)
    assert first.description == "第一行\n第二行"
    assert first.tags == "言和,VOCALOID"
    assert (first.uploader_mid, first.uploader_name, first.duration) == (7, "某P", 200)
    assert first.published_at.isoformat() == "2024-01-01T19:04:05+00:00"  # naive = Asia/Shanghai
    assert first.raw["extra"] == "x"
    second = Video.objects.get(aid=102)
    assert (second.bvid, second.tags, second.uploader_mid) == ("", "乐正绫,UTAU", None)
    assert (second.published_at, second.duration) == (None, None)


def test_text_streams_and_a_bom_are_accepted():
    result = import_videos(source=io.StringIO("\ufeff" + json.dumps(record(5)) + "\n"), format="jsonl")
    assert result.created == 1

    result = import_videos(source=io.BytesIO(b"\xef\xbb\xbfaid,title\n6,x\n"), format="csv")
    assert result.created == 1


def test_bad_rows_are_reported_with_line_and_field_while_good_rows_import():
    content = jsonl(
        record(1),                                   # 1 ok
        {"aid": "abc", "title": "x"},                # 2
        '{"aid": 3, "title": "unterminated',         # 3
        "",                                          # 4 blank: skipped, not a row
        {"aid": 5},                                  # 5
        {"aid": 6, "title": "x", "duration": -1},    # 6
        {"aid": 7, "title": "x", "pubdate": "yesterday"},  # 7
        {"aid": 8, "title": "x", "bvid": "nope"},    # 8
        {"aid": 9, "title": "x", "cover_url": "ftp://x"},  # 9
        [1, 2],                                      # 10
        {"aid": 0, "title": "x"},                    # 11
        {"aid": 12, "title": "x\u0000y"},            # 12
        {"aid": 13, "title": "x", "tags": [1]},      # 13
        record(14),                                  # 14 ok
    )

    result = import_videos(source=content, format="jsonl")

    assert (result.rows, result.created, result.rejected) == (13, 2, 11)
    assert set(Video.objects.values_list("aid", flat=True)) == {1, 14}
    errors = dict(result.errors)
    assert errors[2] == 'aid: must be a positive integer (got "abc")'
    assert errors[3].startswith("invalid JSON: ")
    assert errors[5] == "title: is required and must not be empty"
    assert errors[6].startswith("duration: ")
    assert errors[7].startswith("published_at: must be an ISO 8601 date-time or unix seconds")
    assert errors[8].startswith("bvid: ")
    assert errors[9].startswith("cover_url: must be an http(s) URL")
    assert errors[10] == "record: must be a JSON object (got a list)"
    assert errors[11] == 'aid: must be a positive integer (got "0")'
    assert errors[12] == "title: contains a NUL character"
    assert errors[13] == "tags: item 1 must be text (got a number)"
    assert [line for line, _ in result.errors] == sorted(errors)


def test_invalid_utf8_rejects_only_that_row():
    content = jsonl(record(1)) + b'{"aid": 2, "title": "\xff\xfe"}\n' + jsonl(record(3))

    result = import_videos(source=content, format="jsonl")

    assert result.created == 2
    assert result.errors == [(2, "title: not valid UTF-8 text")]


def test_csv_row_errors_carry_the_line_where_the_record_starts():
    content = 'aid,title,description\n1,ok,\n2,"two\nlines",x\nabc,bad,\n4,,\n5,ok,too,many\n'.encode()

    result = import_videos(source=content, format="csv")

    assert result.created == 2
    assert result.errors == [
        (5, 'aid: must be a positive integer (got "abc")'),
        (6, "title: is required and must not be empty"),
        (7, "record: has 4 fields but the header has 3 columns"),
    ]


def test_duplicate_aid_in_one_file_later_row_wins_and_counts_as_updated():
    content = jsonl(record(1, title="first"), record(2), record(1, title="second"))

    result = import_videos(source=content, format="jsonl", chunk_size=2)  # the duplicate lands in another chunk
    again = import_videos(source=content, format="jsonl")  # ... and in the same chunk

    assert (result.created, result.updated) == (2, 1)
    assert (again.created, again.updated) == (0, 3)
    assert Video.objects.get(aid=1).title == "second"
    assert Video.objects.count() == 2


def test_bvid_owned_by_another_aid_rejects_the_row():
    VideoFactory(aid=1, bvid="BV1aaaaaaaaa")
    content = jsonl(
        record(2, bvid="BV1aaaaaaaaa"),  # owned by aid 1 in the database
        record(3, bvid="BV1bbbbbbbbb"),
        record(4, bvid="BV1bbbbbbbbb"),  # owned by aid 3 earlier in the file
        record(1, bvid="BV1aaaaaaaaa", title="same owner is fine"),
    )

    result = import_videos(source=content, format="jsonl")

    assert (result.created, result.updated) == (1, 1)
    assert result.errors == [
        (1, "bvid: BV1aaaaaaaaa already belongs to the video with aid 1"),
        (3, "bvid: BV1bbbbbbbbb is already used by aid 3 on line 2"),
    ]


def test_reimporting_the_same_file_is_idempotent():
    content = jsonl(*(record(aid) for aid in range(1, 51)))

    first = import_videos(source=content, format="jsonl", chunk_size=20)
    created_at = dict(Video.objects.values_list("aid", "created_at"))
    second = import_videos(source=content, format="jsonl", chunk_size=20)

    assert (first.rows, first.created, first.updated) == (50, 50, 0)
    assert (second.rows, second.created, second.updated) == (50, 0, 50)
    assert Video.objects.count() == 50
    assert dict(Video.objects.values_list("aid", "created_at")) == created_at


def test_reimport_updates_changed_fields():
    import_videos(source=jsonl(record(1, title="old", tags="a")), format="jsonl")

    result = import_videos(source=jsonl(record(1, title="new", tags="b")), format="jsonl")

    assert (result.created, result.updated) == (0, 1)
    assert Video.objects.values_list("title", "tags").get() == ("new", "b")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "xml"}, "format: unsupported format 'xml'"),
        ({"filename": "videos.xlsx"}, "cannot tell the format of 'videos.xlsx'"),
        ({}, "no format given"),
    ],
)
def test_unsupported_format_is_a_clear_error_and_writes_nothing(kwargs, message):
    with pytest.raises(ImportFileError, match=message):
        import_videos(source=jsonl(record(1)), **kwargs)

    assert not Video.objects.exists()


@pytest.mark.parametrize(
    ("content", "format", "message"),
    [
        (b"title,description\nx,y\n", "csv", r"CSV header: required column\(s\) aid missing"),
        (b"aid,title\n1,x\n2,y\n", "jsonl", "no line of the file is valid JSON"),
        (b'{"videos": 1}', "json", "array of video objects"),
        (b"[{", "json", "invalid JSON"),
    ],
)
def test_unparseable_files_raise_and_write_nothing(content, format, message):
    with pytest.raises(ImportFileError, match=message):
        import_videos(source=content, format=format)

    assert not Video.objects.exists()


def test_json_document_format_and_format_resolution():
    content = json.dumps({"videos": [record(1), {"aid": -1, "title": "x"}]}).encode()

    result = import_videos(source=content, filename="dump.json")

    assert (result.created, result.errors) == (1, [(2, 'aid: must be a positive integer (got "-1")')])
    assert resolve_format(filename="a.NDJSON") == "jsonl"
    assert resolve_format(format="CSV", filename="a.jsonl") == "csv"


def test_progress_callback_reports_rows_done():
    seen = []

    content = jsonl(*(record(aid) for aid in range(1, 26)))

    import_videos(source=content, format="jsonl", chunk_size=10, progress=seen.append)

    assert seen == [10, 20, 25]


def test_stored_errors_are_capped_but_counted():
    content = jsonl(*({"aid": "x", "title": "t"} for _ in range(30)), record(1))

    result = import_videos(source=content, format="jsonl", max_errors=5)

    assert (result.rejected, len(result.errors), result.errors_omitted, result.created) == (30, 5, 25, 1)


def test_query_count_is_bounded_per_chunk_not_per_row(django_assert_max_num_queries):
    # Per chunk: SAVEPOINT, SELECT existing aids/bvids, INSERT ... ON CONFLICT, RELEASE.
    small = jsonl(*(record(aid, bvid=f"BV1{aid:09d}") for aid in range(1, 11)))
    large = jsonl(*(record(aid, bvid=f"BV1{aid:09d}") for aid in range(1000, 3000)))

    with django_assert_max_num_queries(4):
        assert import_videos(source=small, format="jsonl").created == 10
    with django_assert_max_num_queries(4 * 2):
        assert import_videos(source=large, format="jsonl", chunk_size=1000).created == 2000
    with django_assert_max_num_queries(4 * 2):
        assert import_videos(source=large, format="jsonl", chunk_size=1000).updated == 2000
    assert Video.objects.count() == 2010


def test_import_video_records_numbers_items():
    result = import_video_records(records=[record(1), "nope", {"aid": 3}])

    assert result.created == 1
    assert result.errors == [
        (2, "record: must be a JSON object (got a string)"),
        (3, "title: is required and must not be empty"),
    ]


# --- command -----------------------------------------------------------------------------


def test_command_prints_errors_and_summary(tmp_path):
    path = tmp_path / "videos.jsonl"
    path.write_bytes(jsonl(record(1), {"aid": "abc", "title": "x"}, record(3)))
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command("import_videos", str(path), stdout=stdout, stderr=stderr)

    output = stdout.getvalue()
    assert 'line 2: aid: must be a positive integer (got "abc")' in output
    assert "Imported 3 rows: 2 created, 0 updated, 1 rejected" in output
    assert Video.objects.count() == 2

    call_command("import_videos", str(path), "--no-progress", stdout=(stdout := io.StringIO()))
    assert "Imported 3 rows: 0 created, 2 updated, 1 rejected" in stdout.getvalue()


def test_command_format_option_and_csv(tmp_path):
    path = tmp_path / "videos.txt"
    path.write_text("aid,title\n1,x\n", encoding="utf-8")
    stdout = io.StringIO()

    call_command("import_videos", str(path), "--format", "csv", stdout=stdout, stderr=io.StringIO())

    assert "1 created" in stdout.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("videos.xml", b"<x/>", "cannot tell the format"),
        ("missing.jsonl", None, "cannot read"),
        ("videos.csv", b"title\nx\n", "required column"),
    ],
)
def test_command_fails_when_the_file_cannot_be_read_or_parsed(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        call_command("import_videos", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert not Video.objects.exists()


# --- API ---------------------------------------------------------------------------------

api_factory = APIRequestFactory()


def call_api(user, data=None, format="multipart"):
    request = api_factory.post("/api/v1/videos/import", data, format=format)
    if user is not None:
        force_authenticate(request, user=user)
    return VideoImportApi.as_view()(request)


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_api_imports_a_file_and_reports_row_errors():
    response = call_api(AdminUserFactory(), {"file": upload("v.jsonl", jsonl(record(1), {"aid": "abc", "title": "x"}))})

    assert response.status_code == 201
    assert response.data == {
        "rows": 2, "created": 1, "updated": 0, "rejected": 1, "errors_omitted": 0,
        "errors": [{"line": 2, "message": 'aid: must be a positive integer (got "abc")'}],
    }

    again = call_api(AdminUserFactory(), {"file": upload("v.jsonl", jsonl(record(1)))})
    assert again.status_code == 200
    assert (again.data["created"], again.data["updated"]) == (0, 1)


def test_api_explicit_format_and_json_body():
    admin = AdminUserFactory(is_staff=False)
    response = call_api(admin, {"file": upload("export.txt", b"aid,title\n1,x\n"), "format": "csv"})
    assert response.status_code == 201

    response = call_api(admin, {"videos": [record(2), {"title": "no aid"}]}, format="json")
    assert response.status_code == 201
    assert response.data["errors"] == [{"line": 2, "message": "aid: is required"}]
    assert Video.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "format", "detail"),
    [
        ({}, "multipart", "file: upload a file"),
        ({"file": upload("v.xml", b"<x/>")}, "multipart", "cannot tell the format"),
        ({"file": upload("v.jsonl", jsonl(record(1))), "format": "xml"}, "multipart", "unsupported format"),
        ({"file": upload("v.csv", b"name\nx\n")}, "multipart", "required column"),
        ({"videos": "nope"}, "json", "videos: must be a list"),
    ],
)
def test_api_bad_requests_are_400_with_detail_and_write_nothing(data, format, detail):
    response = call_api(AdminUserFactory(), data, format=format)

    assert response.status_code == 400
    assert detail in response.data["detail"]
    assert not Video.objects.exists()


def test_api_refuses_labelers_reviewers_plain_staff_and_anonymous_users():
    data = {"videos": [record(1)]}

    assert call_api(LabelerFactory(), data, format="json").status_code == 403
    assert call_api(ReviewerFactory(), data, format="json").status_code == 403
    assert call_api(UserFactory(is_staff=True), data, format="json").status_code == 403
    assert call_api(None, data, format="json").status_code in (401, 403)
    assert not Video.objects.exists()


# --- admin -------------------------------------------------------------------------------


def admin_request(user, data=None):
    factory = RequestFactory()
    url = "/admin/labeling/video/import/"
    request = factory.post(url, data) if data is not None else factory.get(url)
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def test_admin_import_view_shows_form_and_imports(groups):
    model_admin = django_admin.ModelAdmin(Video, django_admin.site)
    user = AdminUserFactory()

    page = import_view(model_admin, admin_request(user))
    page.render()
    assert page.status_code == 200
    assert 'type="file"' in page.content.decode()

    content = jsonl(record(1), {"aid": "x", "title": "t"})
    request = admin_request(user, {"file": upload("v.jsonl", content), "format": ""})
    response = import_view(model_admin, request)
    response.render()

    assert response.status_code == 200
    messages = [str(message) for message in get_messages(request)]
    assert "v.jsonl: Imported 2 rows: 1 created, 0 updated, 1 rejected" in messages
    assert 'line 2: aid: must be a positive integer (got "x")' in messages
    assert "Imported 2 rows" in response.content.decode()
    assert Video.objects.count() == 1


def test_admin_import_view_rejects_unparseable_files_and_users_without_permission(groups):
    model_admin = django_admin.ModelAdmin(Video, django_admin.site)

    request = admin_request(AdminUserFactory(), {"file": upload("v.xml", b"x"), "format": ""})
    response = import_view(model_admin, request)
    response.render()
    assert response.status_code == 400
    assert "cannot tell the format" in response.content.decode()

    with pytest.raises(PermissionDenied):
        import_view(model_admin, admin_request(LabelerFactory(is_staff=True)))


# The hook documented in labeling/admin_import.py, on a private admin site and urlconf.
class _HookedVideoAdmin(django_admin.ModelAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view(functools.partial(import_view, self))
        return [path("import/", view, name="labeling_video_import"), *super().get_urls()]


_hooked_site = django_admin.AdminSite(name="admin")
_hooked_site.register(Video, _HookedVideoAdmin)
urlpatterns = [path("admin/", _hooked_site.urls)]


@pytest.mark.urls(__name__)
def test_documented_admin_hook_serves_the_page_and_the_change_list_button(client, groups):
    client.force_login(AdminUserFactory())

    changelist = client.get("/admin/labeling/video/")
    assert changelist.status_code == 200
    assert 'href="/admin/labeling/video/import/"' in changelist.content.decode()

    data = {"file": upload("v.csv", b"aid,title\n1,x\n"), "format": ""}
    response = client.post("/admin/labeling/video/import/", data)
    assert response.status_code == 200
    assert "Imported 1 rows: 1 created, 0 updated, 0 rejected" in response.content.decode()
    assert Video.objects.filter(aid=1).exists()
