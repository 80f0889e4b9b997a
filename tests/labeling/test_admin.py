import pytest

from tests.labeling.conftest import label_conflicts

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-for-tests-1")
    client.force_login(admin)
    return client


def test_video_admin_lists_searches_and_filters(admin_client_logged_in, make_videos, three_labelers):
    videos = make_videos(3)
    label_conflicts(videos[:1], three_labelers)

    assert admin_client_logged_in.get("/admin/labeling/video/").status_code == 200
    found = admin_client_logged_in.get(f"/admin/labeling/video/?q={videos[1].aid}").content.decode()
    assert videos[1].title in found and videos[2].title not in found
    filtered = admin_client_logged_in.get("/admin/labeling/video/?consensus__is_inconsistent__exact=1").content.decode()
    assert videos[0].title in filtered and videos[1].title not in filtered


def test_video_change_page_shows_read_only_history(admin_client_logged_in, make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)

    body = admin_client_logged_in.get(f"/admin/labeling/video/{video.pk}/change/").content.decode()

    assert "ann" in body and "bob" in body


def test_labels_are_read_only_in_the_admin(admin_client_logged_in, make_video, three_labelers):
    label_conflicts([make_video()], three_labelers)
    from labeling.models import Label

    label = Label.objects.first()
    assert admin_client_logged_in.get("/admin/labeling/label/?value__exact=1").status_code == 200
    assert admin_client_logged_in.get("/admin/labeling/label/add/").status_code == 403
    assert admin_client_logged_in.post(f"/admin/labeling/label/{label.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Label.objects.filter(pk=label.pk).exists()
