from django.contrib.auth import get_user_model

from labeling.models import Label, Video


def _card_aid(page) -> str:
    return page.locator("#label-card").get_attribute("data-video-aid")


def _press_and_wait_for_next(page, key: str) -> None:
    before = _card_aid(page)
    page.keyboard.press(key)
    page.wait_for_function(
        "before => document.querySelector('#label-card')?.dataset.videoAid !== before", arg=before
    )


def test_label_three_videos_with_the_keyboard_then_undo(logged_in_page, screenshot_path, groups):
    videos = Video.objects.bulk_create(
        [Video(aid=1000 + n, bvid=f"BV1test{n:05d}", title=f"【洛天依原创】测试曲 {n}", tags="洛天依,VOCALOID") for n in range(5)]
    )
    user = get_user_model().objects.create_user("keyboard-labeler", password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    page = logged_in_page(user)

    page.goto("/labeling/")
    assert _card_aid(page) == "1000"
    _press_and_wait_for_next(page, "1")   # av1000 yes
    _press_and_wait_for_next(page, "0")   # av1001 no
    _press_and_wait_for_next(page, "1")   # av1002 yes
    assert _card_aid(page) == "1003"
    page.wait_for_function("document.querySelector('[data-testid=labeled-today]').textContent.trim() === '3'")

    _press_and_wait_for_next(page, "u")   # undo av1002: it comes back
    assert _card_aid(page) == "1002"
    page.wait_for_selector("text=Undid your")
    page.screenshot(path=screenshot_path("labeling-keyboard"), full_page=True)

    labels = list(Label.objects.filter(user=user).order_by("created_at", "id").values_list("video__aid", "value", "retracted_at"))
    assert [(aid, value) for aid, value, _ in labels] == [(1000, True), (1001, False), (1002, True)]
    assert [retracted is not None for _, _, retracted in labels] == [False, False, True]
    assert page.locator("[data-testid=labeled-today]").inner_text() == "2"
    assert len(videos) == 5


def test_shortcuts_do_not_fire_while_a_form_field_has_focus(logged_in_page, groups):
    Video.objects.bulk_create([Video(aid=2000 + n, title=f"测试 {n}") for n in range(2)])
    user = get_user_model().objects.create_user("focused-labeler", password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    page = logged_in_page(user)
    page.goto("/labeling/")

    page.focus("select[name=mode]")
    page.keyboard.press("1")
    page.wait_for_timeout(300)

    assert _card_aid(page) == "2000"
    assert not Label.objects.filter(user=user).exists()


def test_reviewer_resolves_a_conflict_with_one_click(logged_in_page, groups, screenshot_path):
    video = Video.objects.create(aid=3000, bvid="BV1review001", title="【初音ミク】争议视频")
    labelers = []
    for name, value in (("ann", True), ("bob", False)):
        labeler = get_user_model().objects.create_user(name)
        Label.objects.create(video=video, user=labeler, value=value)
        labelers.append(labeler)
    reviewer = get_user_model().objects.create_user("rita")
    reviewer.groups.add(groups["reviewers"])
    page = logged_in_page(reviewer)

    page.goto("/labeling/review/")
    page.click(f"#review-row-{video.pk} button.no")
    page.wait_for_selector("text=Resolved: no by rita")
    page.screenshot(path=screenshot_path("review-resolve"), full_page=True)

    assert list(video.reviews.values_list("reviewer__username", "value")) == [("rita", False)]
