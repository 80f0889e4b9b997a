"""The labeling loop in a real browser (issue 14): Back never relabels, an expired session
or a stale CSRF token is shown (never swallowed), history is blind, messages do not move
the buttons, keys ignore Shift/Caps Lock and `?` lists them."""

from django.conf import settings
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


def _labeler(groups, name: str):
    user = get_user_model().objects.create_user(name, password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    return user


def _videos(first_aid: int, count: int = 4) -> list[Video]:
    return Video.objects.bulk_create(
        [Video(aid=first_aid + n, title=f"【初音ミク】测试曲 {n}", tags="VOCALOID", duration=95) for n in range(count)]
    )


def test_back_after_history_never_relabels_silently(logged_in_page, groups, screenshot_path):
    first, *_ = _videos(4000)
    user = _labeler(groups, "back-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")
    # An unload listener keeps the page out of the back/forward cache (as many extensions
    # do): Back then shows the HTTP cache's copy of /labeling/, the card as first loaded.
    page.evaluate("window.addEventListener('unload', () => {})")
    assert _card_aid(page) == "4000"
    _press_and_wait_for_next(page, "0")  # av4000: no

    page.click("#label-card a:text('history')")
    page.wait_for_url("**/labeling/videos/4001/")
    page.go_back()
    page.wait_for_selector("#label-card")
    shown = _card_aid(page)
    page.keyboard.press("1")
    page.wait_for_function("before => document.querySelector('#label-card')?.dataset.videoAid !== before"
                           " || document.querySelector('[data-testid=change-confirm]')", arg=shown)
    page.screenshot(path=screenshot_path("labeling-back"), full_page=True)

    # Whatever Back showed, av4000's "no" stands: a fresh card (av4001) or a question.
    assert list(Label.objects.filter(video=first).values_list("value", flat=True)) == [False]
    if shown == "4000":
        assert page.locator("[data-testid=change-confirm]").is_visible()


def test_a_stale_card_asks_before_changing_and_changes_on_confirm(logged_in_page, groups):
    first, *_ = _videos(4100)
    user = _labeler(groups, "stale-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")
    Label.objects.create(video=first, user=user, value=False)  # labeled in another tab
    yes = page.locator("#label-actions button.yes")
    before = yes.bounding_box()["y"]

    page.keyboard.press("1")
    page.wait_for_selector("[data-testid=change-confirm]")
    assert yes.bounding_box()["y"] == before  # the question never moves the buttons
    assert "You labeled this no at" in page.inner_text("[data-testid=change-confirm]")
    assert _card_aid(page) == "4100"
    assert Label.objects.filter(video=first).count() == 1

    before = _card_aid(page)
    page.click("[data-testid=confirm-change]")
    page.wait_for_function("before => document.querySelector('#label-card')?.dataset.videoAid !== before", arg=before)
    assert Label.objects.filter(video=first).latest("created_at", "id").value is True


def test_expired_session_goes_to_login_and_back_to_the_same_queue(logged_in_page, groups, live_server):
    _videos(4200)
    user = _labeler(groups, "expired-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/?mode=random")
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)

    page.keyboard.press("1")
    page.wait_for_url(lambda url: "/accounts/login/" in url)
    assert page.url.endswith("/accounts/login/?next=/labeling/%3Fmode%3Drandom")
    assert page.locator("#label-card").count() == 0
    page.fill("input[name=username]", "expired-labeler")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.click("form button[type=submit], form input[type=submit]")

    page.wait_for_url(lambda url: url.endswith("/labeling/?mode=random"))
    page.wait_for_selector("#label-card")
    assert not Label.objects.exists()


def test_missing_csrf_cookie_shows_a_visible_message(logged_in_page, groups, screenshot_path):
    _videos(4300)
    user = _labeler(groups, "csrf-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")
    page.context.clear_cookies(name=settings.CSRF_COOKIE_NAME)

    page.keyboard.press("1")
    banner = page.locator("[data-testid=htmx-error]")
    banner.wait_for(state="visible")
    page.screenshot(path=screenshot_path("labeling-csrf"), full_page=True)

    assert "403" in banner.inner_text()
    assert "your session expired or the page is stale — reload" in banner.inner_text()
    assert not Label.objects.exists()


def test_server_error_on_a_key_press_is_shown(logged_in_page, groups):
    _videos(4400)
    page = logged_in_page(_labeler(groups, "error-labeler"))
    page.goto("/labeling/")
    page.route("**/labeling/answer", lambda route: route.fulfill(status=500, body="boom", content_type="text/html"))

    page.keyboard.press("1")

    banner = page.locator("[data-testid=htmx-error]")
    banner.wait_for(state="visible")
    assert "500" in banner.inner_text() and "server failed" in banner.inner_text()


def test_history_link_is_blind_until_the_labeler_votes(logged_in_page, groups, settings):
    settings.CVSA_LABELING_OVERLAP = 3  # two votes already: the queue still serves it
    video, *_ = _videos(4500)
    for name, value in (("ann-b", True), ("bob-b", False)):
        Label.objects.create(video=video, user=get_user_model().objects.create_user(name), value=value)
    user = _labeler(groups, "blind-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")

    assert _card_aid(page) == str(video.aid)
    page.click("#label-card a:text('history')")
    page.wait_for_selector("[data-testid=blind]")
    assert "ann-b" not in page.content() and "bob-b" not in page.content()

    Label.objects.create(video=video, user=user, value=True)
    page.reload()
    page.wait_for_selector("text=Effective labels")
    assert "ann-b" in page.content()


def test_undo_message_does_not_move_the_buttons(logged_in_page, groups, screenshot_path):
    _videos(4600)
    page = logged_in_page(_labeler(groups, "steady-labeler"))
    page.goto("/labeling/")
    yes = page.locator("#label-actions button.yes")
    before = yes.bounding_box()["y"]

    _press_and_wait_for_next(page, "1")
    _press_and_wait_for_next(page, "u")  # av4600 comes back, with "Undid your …"
    page.wait_for_selector("text=Undid your")
    page.screenshot(path=screenshot_path("labeling-undo-message"), full_page=True)

    assert _card_aid(page) == "4600"
    assert yes.bounding_box()["y"] == before


def test_keys_ignore_shift_and_caps_lock_and_question_mark_lists_them(logged_in_page, groups, screenshot_path):
    _videos(4700)
    user = _labeler(groups, "shift-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")

    _press_and_wait_for_next(page, "Shift+Digit1")   # "!" on a US layout: still yes
    page.keyboard.press("CapsLock")
    _press_and_wait_for_next(page, "Shift+KeyS")     # "S": still skip
    _press_and_wait_for_next(page, "Digit0")
    # The card swaps in before the answer is saved (prefetched): wait for the counter.
    page.wait_for_function("document.querySelector('[data-testid=labeled-today]').textContent.trim() === '2'")
    assert list(Label.objects.filter(user=user).order_by("id").values_list("video__aid", "value")) == [
        (4700, True), (4702, False)]

    page.keyboard.press("Shift+Slash")               # "?"
    help_overlay = page.locator("[data-testid=keys-help]")
    help_overlay.wait_for(state="visible")
    page.screenshot(path=screenshot_path("labeling-keys-help"), full_page=True)
    assert "undo your last answer" in help_overlay.inner_text()
    page.keyboard.press("Escape")
    help_overlay.wait_for(state="hidden")
