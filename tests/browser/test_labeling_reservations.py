"""Two labelers open the queue at the same moment in two browser contexts: each gets a
different video (a reservation — the card shown and the cards the page prefetches), and a
reload shows each the same card again."""

from django.contrib.auth import get_user_model

from labeling.models import LabelReservation, Video


def _card_aid(page) -> str:
    page.wait_for_selector("#label-card[data-video-aid]")
    return page.locator("#label-card").get_attribute("data-video-aid")


def test_two_labelers_opening_the_queue_at_once_get_different_videos(logged_in_page, screenshot_path, groups, settings):
    settings.CVSA_LABELING_OVERLAP = 1
    Video.objects.bulk_create([Video(aid=2000 + n, title=f"【初音ミク】测试曲 {n}") for n in range(8)])
    users = []
    for name in ("ann-browser", "bob-browser"):
        user = get_user_model().objects.create_user(name, password="pw-for-tests-1")
        user.groups.add(groups["labelers"])
        users.append(user)
    ann_page, bob_page = logged_in_page(users[0]), logged_in_page(users[1])

    # Both navigations start before either page has loaded.
    ann_page.goto("/labeling/", wait_until="commit")
    bob_page.goto("/labeling/", wait_until="commit")
    ann_aid, bob_aid = _card_aid(ann_page), _card_aid(bob_page)

    assert ann_aid != bob_aid
    held = {name: set() for name in ("ann-browser", "bob-browser")}
    for name, aid in LabelReservation.objects.values_list("user__username", "video__aid"):
        held[name].add(aid)
    # Each holds the card shown and the two cards behind it; no video is held twice.
    assert int(ann_aid) in held["ann-browser"] and int(bob_aid) in held["bob-browser"]
    assert len(held["ann-browser"]) == len(held["bob-browser"]) == 3
    assert not held["ann-browser"] & held["bob-browser"]
    ann_page.reload()
    assert _card_aid(ann_page) == ann_aid  # a reload shows the card reserved for her
    bob_page.screenshot(path=screenshot_path("labeling-reservations"), full_page=True)
