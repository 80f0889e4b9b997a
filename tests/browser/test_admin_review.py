"""The review admin in a real browser at 1366×768 (issue 10 item 10): every column of the
video list is on screen without scrolling sideways, and a pasted av id finds its video."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from labeling.models import Label, LabelSource, Review, Video

VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture
def admin_page(chromium, live_server, transactional_db):
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-1")
    client = Client()
    client.force_login(admin)
    context = chromium.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.add_cookies([{
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }])
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def review_corpus(transactional_db):
    """Long real-looking titles and uploader names, every consensus state, model labels."""
    users = [get_user_model().objects.create_user(f"labeler{n}", password="pw-for-tests-1") for n in range(3)]
    scorer = get_user_model().objects.create_user("scorer", password="pw-for-tests-1")
    now = timezone.now()
    videos = Video.objects.bulk_create([
        Video(
            aid=104902138 + n * 7919, bvid=f"BV1{n:02d}h411B7qL"[:12],
            title=f"【洛天依·言和原创】第{n}首：一首标题非常非常长的原创曲，讲述一个关于夏天、海边与告别的故事（完整版 PV 付歌词）",
            uploader_name=f"某个名字也很长的音乐制作人P_{n}", published_at=now - timedelta(days=n),
            description="作词：某人\n作曲：某人", tags="洛天依,言和,VOCALOID,原创曲",
            raw={"aid": 104902138 + n * 7919, "owner": {"name": "某P"}, "stat": {"view": 12345}},
        )
        for n in range(30)
    ])
    votes = [(True, True, True), (True, False, True), (False, False), (True, False), (True,), ()]
    labels = []
    for n, video in enumerate(videos):
        for user, value in zip(users, votes[n % len(votes)]):
            labels.append(Label(video=video, user=user, value=value))
        if n % 4 == 0:
            labels.append(Label(video=video, user=scorer, value=n % 8 == 0, source=LabelSource.MODEL))
    Label.objects.bulk_create(labels)
    Review.objects.create(video=videos[1], reviewer=users[0], value=False, note="a cover of an existing song")
    return videos


def test_the_video_list_fits_1366_and_finds_a_pasted_av_id(admin_page, review_corpus, screenshot_path):
    page = admin_page
    page.goto("/admin/labeling/video/")
    page.screenshot(path=screenshot_path("admin-video-changelist-1366"))

    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls {overflow}px sideways at 1366px"
    for column in ("video", "short_title", "consensus_column", "last_labeled"):
        right = page.evaluate(f"document.querySelector('#result_list th.column-{column}').getBoundingClientRect().right")
        assert right <= VIEWPORT["width"], column

    page.fill("#searchbar", "av104902138")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=av104902138*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "av104902138" in rows.first.inner_text()

    rows.first.locator("th.field-video a").click()
    page.wait_for_selector("#labels-group")
    page.screenshot(path=screenshot_path("admin-video-change-1366"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the change page scrolls {overflow}px sideways at 1366px"
    history = page.locator("#labels-group").inner_text()
    assert "labeler0: yes (human) at" in history and "scorer: yes (model) at" in history
    assert "never a vote (model label)" in history
