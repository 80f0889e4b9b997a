"""The labeling card in a real browser: unsure with a comment, the labeler's own keys, ←
to change an earlier answer, the guideline beside the card, and the prefetched swap."""

import statistics

from django.contrib.auth import get_user_model

from labeling import guidelines
from labeling.models import Label, LabelerPreferences, LabelPass, Video


def _card_aid(page) -> str:
    return page.locator("#label-card").get_attribute("data-video-aid")


def _press_and_wait_for_next(page, key: str) -> None:
    before = _card_aid(page)
    page.keyboard.press(key)
    page.wait_for_function("before => document.querySelector('#label-card')?.dataset.videoAid !== before", arg=before)


def _labeler(groups, name: str):
    user = get_user_model().objects.create_user(name, password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    return user


def _videos(first_aid: int, count: int = 5) -> list[Video]:
    return Video.objects.bulk_create(
        [Video(aid=first_aid + n, title=f"【初音ミク】测试曲 {n}", tags="VOCALOID", duration=95) for n in range(count)]
    )


def _wait_for_rows(model, count: int, **filters) -> None:
    from tests.support.waiting import wait_until

    wait_until(lambda: model.objects.filter(**filters).count() >= count, f"{count} {model.__name__} rows")


def test_unsure_with_a_comment(logged_in_page, groups, screenshot_path):
    first, *_ = _videos(5000)
    user = _labeler(groups, "unsure-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")

    page.keyboard.press("m")
    page.locator("[data-testid=unsure-box]").wait_for(state="visible")
    page.keyboard.type("sounds like a human cover")
    page.screenshot(path=screenshot_path("labeling-unsure-comment"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#label-card')?.dataset.videoAid === '5001'")

    _wait_for_rows(LabelPass, 1, user=user)
    row = LabelPass.objects.get(user=user)
    assert (row.video_id, row.reason, row.comment) == (first.pk, "unsure", "sounds like a human cover")
    assert not Label.objects.exists()


def test_configured_keys_take_effect(logged_in_page, groups, screenshot_path):
    _videos(5100)
    user = _labeler(groups, "keys-labeler")
    LabelerPreferences.objects.create(user=user, keys={"yes": "KeyJ", "no": "KeyF"})
    page = logged_in_page(user)
    page.goto("/labeling/")

    _press_and_wait_for_next(page, "j")
    _press_and_wait_for_next(page, "f")
    page.keyboard.press("1")  # no longer a key: nothing happens
    page.keyboard.press("Shift+Slash")
    page.locator("[data-testid=keys-help]").wait_for(state="visible")
    page.screenshot(path=screenshot_path("labeling-configured-keys"), full_page=True)
    assert "j" in page.inner_text("[data-testid=keys-help] tr[data-key-action=yes] kbd")

    _wait_for_rows(Label, 2, user=user)
    assert list(Label.objects.filter(user=user).order_by("id").values_list("video__aid", "value")) == [
        (5100, True), (5101, False)]


def test_previous_shows_the_last_answer_and_changes_it(logged_in_page, groups, screenshot_path):
    first, *_ = _videos(5200)
    user = _labeler(groups, "previous-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")
    _press_and_wait_for_next(page, "1")  # av5200 yes
    _wait_for_rows(Label, 1, user=user)

    _press_and_wait_for_next(page, "ArrowLeft")
    assert _card_aid(page) == "5200"
    assert page.inner_text("[data-testid=previous-answer-value]") == "yes"
    page.screenshot(path=screenshot_path("labeling-previous"), full_page=True)
    _press_and_wait_for_next(page, "0")  # change to no, explicitly on this card

    from tests.support.waiting import wait_until
    wait_until(lambda: Label.objects.filter(video=first, user=user).count() == 2, "the changed label")
    assert Label.objects.filter(video=first).latest("created_at", "id").value is False


def test_guideline_beside_the_card(logged_in_page, groups, screenshot_path):
    _videos(5300)
    admin = get_user_model().objects.create_user("guide-admin")
    admin.groups.add(groups["admins"])
    guidelines.guideline_publish(body="## When to say yes\n\n- sung by a **vocal synth**\n\n<script>x</script>", user=admin)
    page = logged_in_page(_labeler(groups, "guided-labeler"))
    page.goto("/labeling/")

    panel = page.locator("[data-testid=guideline-panel]")
    assert panel.is_visible() and "Guideline v1" in panel.inner_text()
    assert "<script>x</script>" in panel.inner_text()  # shown as text
    card_box, panel_box = page.locator("#label-card").bounding_box(), panel.bounding_box()
    assert panel_box["x"] > card_box["x"] + card_box["width"] - 1  # beside, not below
    page.screenshot(path=screenshot_path("labeling-guideline"), full_page=True)
    page.click("[data-testid=guideline-panel] summary")
    page.wait_for_function("!document.querySelector('[data-testid=guideline-panel]').open")


def test_a_failed_background_answer_puts_the_card_back(logged_in_page, groups):
    _videos(5400)
    page = logged_in_page(_labeler(groups, "failing-labeler"))
    page.goto("/labeling/")
    page.route("**/labeling/answer", lambda route: route.fulfill(status=500, body="boom", content_type="text/plain"))

    page.keyboard.press("1")
    page.locator("[data-testid=htmx-error]").wait_for(state="visible")
    page.wait_for_function("document.querySelector('#label-card')?.dataset.videoAid === '5400'")
    assert "not saved" in page.inner_text("[data-testid=htmx-error]")
    assert page.locator("#label-prefetch template").count() == 2  # the swapped-in card is back in the buffer


def test_key_press_to_next_card_visible(logged_in_page, groups):
    """Measures key → next card in the DOM (prefetched). Reports, never asserts, durations."""
    _videos(5500, count=40)
    user = _labeler(groups, "fast-labeler")
    page = logged_in_page(user)
    page.goto("/labeling/")
    page.evaluate("""() => {
        window.__swaps = [];
        new MutationObserver(() => {
            const card = document.getElementById('label-card');
            if (card && card.dataset.videoAid !== window.__lastAid) {
                window.__lastAid = card.dataset.videoAid;
                if (window.__pressedAt) window.__swaps.push(performance.now() - window.__pressedAt);
            }
        }).observe(document.querySelector('.label-main'), {childList: true, subtree: true});
        window.__lastAid = document.getElementById('label-card').dataset.videoAid;
        document.addEventListener('keydown', () => { window.__pressedAt = performance.now(); }, true);
    }""")
    for n in range(30):
        _press_and_wait_for_next(page, "1" if n % 2 else "0")
        # Wait for the answer's response to top the buffer up (a labeler's pace, not a race).
        page.wait_for_function("document.querySelectorAll('#label-prefetch template').length >= 2")
    swaps = page.evaluate("window.__swaps")
    _wait_for_rows(Label, 30, user=user)
    swaps = sorted(swaps)
    p50, p95 = statistics.median(swaps), swaps[int(len(swaps) * 0.95) - 1]
    print(f"\nkey press -> next card visible over {len(swaps)} presses: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert len(swaps) == 30
