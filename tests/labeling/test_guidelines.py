"""The versioned guideline: published by admins, rendered safely, recorded on labels."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from labeling import guidelines
from labeling.models import Guideline, Label, LabelPass

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_user(make_user):
    return make_user("root", group="admins")


def test_publish_numbers_versions_and_the_latest_is_current(admin_user):
    first = guidelines.guideline_publish(body="# Rules\n\nv1", change_note="first", user=admin_user)
    second = guidelines.guideline_publish(body="# Rules\n\nv2", user=admin_user)

    assert (first.version, second.version) == (1, 2)
    assert guidelines.guideline_current() == second


def test_only_admins_publish_and_an_empty_body_is_refused(user, admin_user):
    with pytest.raises(PermissionDenied):
        guidelines.guideline_publish(body="x", user=user)
    with pytest.raises(ValidationError, match="cannot be empty"):
        guidelines.guideline_publish(body="   ", user=admin_user)
    assert not Guideline.objects.exists()


def test_raw_html_is_shown_as_text(admin_user):
    guideline = guidelines.guideline_publish(
        body="**yes** if sung\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))", user=admin_user)

    html = guidelines.guideline_html(guideline)

    assert "<strong>yes</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html


def test_card_shows_the_guideline_and_labels_record_its_version(logged_in_client, user, admin_user, make_videos):
    first, second, _ = make_videos(3)
    shown = guidelines.guideline_publish(body="Say **yes** for sung works", user=admin_user)

    page = logged_in_client.get("/labeling/").content.decode()
    assert "Guideline v1" in page and "<strong>yes</strong> for sung works" in page
    guidelines.guideline_publish(body="v2 meanwhile", user=admin_user)
    logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1", "guideline": shown.pk}, **HTMX)
    logged_in_client.post("/labeling/unsure", {"video_id": second.pk, "guideline": shown.pk}, **HTMX)

    assert Label.objects.get().guideline == shown  # the version the card was shown with
    assert LabelPass.objects.get().guideline == shown


def test_guideline_page_lists_versions_and_admins_publish_from_the_form(client, user, admin_user):
    guidelines.guideline_publish(body="old text", change_note="start", user=admin_user)
    client.force_login(user)
    page = client.get("/labeling/guidelines/").content.decode()
    assert "old text" in page and "start" in page
    assert client.post("/labeling/guidelines/edit", {"body": "new"}).status_code == 403

    client.force_login(admin_user)
    response = client.post("/labeling/guidelines/edit", {"body": "new <b>text</b>", "change_note": "clearer"}, follow=True)

    assert "Published guideline v2" in response.content.decode()
    assert "new &lt;b&gt;text&lt;/b&gt;" in response.content.decode()
    assert client.get("/labeling/guidelines/?version=1").content.decode().count("old text") == 1
    assert client.get("/labeling/guidelines/?version=9").status_code == 404
