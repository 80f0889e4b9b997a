"""Bulk labeling (issue 14): filter by uploader, tag, title; preview; confirm writes
import labels and an audit row in one transaction; re-running adds no second vote; an
empty filter is refused with nothing written."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from labeling.bulk_labels import bulk_filter_clean, bulk_label_apply, bulk_label_preview
from labeling.models import BulkLabelOperation, EffectiveLabel, Label, LabelSource


@pytest.fixture
def admin_user(make_user):
    return make_user("adam", group="admins")


@pytest.fixture
def corpus(make_video):
    return {
        "miku": make_video(uploader_mid=42, uploader_name="MikuP", tags="初音ミク,VOCALOID", title="Miku song"),
        "miku2": make_video(uploader_mid=42, uploader_name="MikuP", tags="VOCALOID，翻唱", title="Miku cover"),
        "other": make_video(uploader_mid=7, uploader_name="Other", tags="VOCALOID-like,游戏", title="game music"),
    }


def test_filters_select_by_uploader_mid_or_name_whole_tag_and_title(corpus):
    assert bulk_label_preview(bulk_filter_clean({"uploader": "42"})).count == 2
    assert bulk_label_preview(bulk_filter_clean({"uploader": "mikup"})).count == 2
    # A whole tag, either comma: "VOCALOID-like" is not "VOCALOID".
    assert bulk_label_preview(bulk_filter_clean({"tag": "vocaloid"})).count == 2
    assert bulk_label_preview(bulk_filter_clean({"tag": "翻唱"})).count == 1
    preview = bulk_label_preview(bulk_filter_clean({"uploader": "42", "title": "cover"}))
    assert preview.count == 1 and [v.pk for v in preview.examples] == [corpus["miku2"].pk]
    assert preview.description == 'videos with uploader mid 42 and title contains "cover"'


def test_an_empty_filter_is_refused(corpus):
    with pytest.raises(ValidationError, match="empty filter would label every video"):
        bulk_filter_clean({"uploader": "  ", "tag": "", "title": None})


def test_confirm_writes_import_labels_and_the_audit_row(corpus, admin_user):
    operation = bulk_label_apply(bulk_filter=bulk_filter_clean({"uploader": "42"}), value=True, user=admin_user, previewed_count=2)

    assert operation.labels_written == 2 and operation.previewed_count == 2
    assert operation.filter == {"uploader": "42"} and operation.description == "videos with uploader mid 42"
    labels = Label.objects.filter(bulk_operation=operation)
    assert {(label.video_id, label.user_id, label.value, label.source) for label in labels} == {
        (corpus["miku"].pk, admin_user.pk, True, LabelSource.IMPORT),
        (corpus["miku2"].pk, admin_user.pk, True, LabelSource.IMPORT),
    }


def test_re_running_the_same_filter_adds_no_second_vote(corpus, admin_user):
    bulk_filter = bulk_filter_clean({"uploader": "42"})
    bulk_label_apply(bulk_filter=bulk_filter, value=True, user=admin_user, previewed_count=2)

    again = bulk_label_apply(bulk_filter=bulk_filter, value=True, user=admin_user, previewed_count=2)

    assert again.labels_written == 0
    assert Label.objects.count() == 2 and EffectiveLabel.objects.count() == 2
    # The other answer replaces the admin's vote (their latest label counts), still one each.
    flipped = bulk_label_apply(bulk_filter=bulk_filter, value=False, user=admin_user, previewed_count=2)
    assert flipped.labels_written == 2
    assert sorted(EffectiveLabel.objects.values_list("value", flat=True)) == [False, False]


def test_only_admins_bulk_label(corpus, make_user):
    with pytest.raises(PermissionDenied):
        bulk_label_apply(bulk_filter=bulk_filter_clean({"tag": "VOCALOID"}), value=True,
                         user=make_user("rita", group="reviewers"), previewed_count=2)
    assert Label.objects.count() == 0 and BulkLabelOperation.objects.count() == 0


def test_page_preview_then_confirm(client, corpus, admin_user):
    client.force_login(admin_user)

    preview = client.get("/labeling/bulk-label/", {"tag": "VOCALOID"}).content.decode()
    assert "2 videos: videos with tag" in preview and "Miku song" in preview and "game music" not in preview

    response = client.post("/labeling/bulk-label/", {"tag": "VOCALOID", "value": "1", "previewed_count": "2"}, follow=True)
    assert "yes on 2 videos" in response.content.decode()
    assert Label.objects.filter(source=LabelSource.IMPORT, value=True).count() == 2


def test_page_empty_filter_is_a_clear_error_and_writes_nothing(client, corpus, admin_user):
    client.force_login(admin_user)

    response = client.post("/labeling/bulk-label/", {"uploader": "", "value": "1", "previewed_count": "3"})

    assert response.status_code == 400
    assert "empty filter would label every video" in response.content.decode()
    assert Label.objects.count() == 0 and BulkLabelOperation.objects.count() == 0


def test_page_is_for_admins_only(logged_in_client, corpus):
    response = logged_in_client.get("/labeling/bulk-label/", {"tag": "VOCALOID"})
    assert response.status_code == 403 and "only admins can use it" in response.content.decode()


def test_api_preview_and_confirm(client, corpus, admin_user):
    client.force_login(admin_user)

    preview = client.post("/api/v1/labels/bulk/preview", {"uploader": "MikuP"}, content_type="application/json")
    assert preview.status_code == 200 and preview.json()["count"] == 2
    assert [row["aid"] for row in preview.json()["examples"]] == sorted([corpus["miku"].aid, corpus["miku2"].aid])

    created = client.post("/api/v1/labels/bulk", {"uploader": "MikuP", "value": False, "previewed_count": 2},
                          content_type="application/json")
    assert created.status_code == 201 and created.json()["labels_written"] == 2

    empty = client.post("/api/v1/labels/bulk", {"value": True, "previewed_count": 0}, content_type="application/json")
    assert empty.status_code == 400 and "empty filter" in str(empty.json())
    assert BulkLabelOperation.objects.count() == 1


def test_api_refuses_a_labeler(client, corpus, user):
    client.force_login(user)
    response = client.post("/api/v1/labels/bulk", {"tag": "VOCALOID", "value": True, "previewed_count": 2},
                           content_type="application/json")
    assert response.status_code == 403 and Label.objects.count() == 0
