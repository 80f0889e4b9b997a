"""The review queue in a real browser (issue 14): resolving a row removes it and the
counters change without a reload; the note typed in the row is saved with the review."""

import pytest
from django.contrib.auth import get_user_model

from labeling.models import Label, Review, Video

pytestmark = pytest.mark.django_db(transaction=True)


def test_resolved_row_leaves_and_counts_update_without_reload(logged_in_page, groups, screenshot_path):
    videos = [Video.objects.create(aid=3100 + n, bvid=f"BV1review{n:03d}", title=f"争议视频 {n}") for n in range(2)]
    for name, value in (("ann", True), ("bob", False)):
        labeler = get_user_model().objects.create_user(name)
        Label.objects.bulk_create([Label(video=video, user=labeler, value=value) for video in videos])
    reviewer = get_user_model().objects.create_user("rita")
    reviewer.groups.add(groups["reviewers"])
    page = logged_in_page(reviewer)

    page.goto("/labeling/review/")
    page.wait_for_selector("text=2 conflicting videos")
    page.evaluate("window.__notReloaded = true")
    first = f"#review-row-{videos[0].pk}"
    page.fill(f"{first} input[name=note]", "official upload")
    page.click(f"{first} button.yes")

    page.wait_for_selector(first, state="detached")
    page.wait_for_selector("text=1 conflicting video ·")
    page.wait_for_selector("text=Resolved: yes by rita")
    assert page.evaluate("window.__notReloaded") is True
    assert page.is_visible(f"#review-row-{videos[1].pk}")
    page.screenshot(path=screenshot_path("review-queue-resolved"), full_page=True)
    assert list(Review.objects.values_list("video_id", "value", "note")) == [(videos[0].pk, True, "official upload")]
