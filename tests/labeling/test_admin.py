"""The admin as a review tool (issue 10 item 10): find a video by any id people paste,
read its consensus in one column, its history newest first with meaningful row titles,
filters with readable titles, and a query count that does not grow with the rows."""

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.models import Label, LabelSource, Review, Video
from tests.labeling.conftest import label_conflicts

pytestmark = pytest.mark.django_db

VIDEOS = "/admin/labeling/video/"


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-for-tests-1")
    client.force_login(admin)
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def listed_aids(body: str) -> set[int]:
    """The aids in the change list's first column ("av123…")."""
    return {int(aid) for aid in re.findall(r'<th class="field-video"><a href="[^"]+">av(\d+)', body)}


def result_headers(body: str) -> list[str]:
    table = body[body.index('id="result_list"'):]
    head = table[: table.index("</thead>")]
    return re.findall(r'<th scope="col"\s+class="([^"]*)"', head)


# --- search -------------------------------------------------------------------------


def test_search_finds_a_video_by_av_bv_bare_aid_or_link(admin_client_logged_in, make_videos):
    target, other, _ = make_videos(3)
    target.aid, target.bvid = 104902138, "BV1Vh411B7qL"
    target.save()

    for term in ("av104902138", "AV104902138", "104902138", " av104902138 ", "BV1Vh411B7qL", "bv1Vh411B7qL",
                 "https://www.bilibili.com/video/BV1Vh411B7qL/?spm_id_from=333", "https://www.bilibili.com/video/av104902138"):
        assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q={term}")) == {104902138}, term
    # Several ids pasted at once; the case after "BV" matters (base58).
    assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q=av104902138, av{other.aid}")) == {104902138, other.aid}
    assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q=BV1vh411b7ql")) == set()


def test_search_by_words_and_a_bare_number_also_matches_titles(admin_client_logged_in, make_videos):
    titled, numbered = make_videos(2)
    titled.title = "【初音ミク】夏の歌 2024"
    titled.save()

    assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q=夏の歌")) == {titled.aid}
    assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q=2024")) == {titled.aid}
    assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q={numbered.aid}")) == {numbered.aid}
    assert listed_aids(page(admin_client_logged_in, f"{VIDEOS}?q=av99999999999")) == set()


def test_labels_and_reviews_are_found_by_the_videos_av_id(admin_client_logged_in, make_videos, three_labelers, reviewer):
    target, other = make_videos(2)
    label_conflicts([target, other], three_labelers)
    Review.objects.create(video=target, reviewer=reviewer, value=True, note="clear")
    Review.objects.create(video=other, reviewer=reviewer, value=False)

    labels = page(admin_client_logged_in, f"/admin/labeling/label/?q=av{target.aid}")
    assert labels.count(f">av{target.aid}</a>") == 3 and f">av{other.aid}</a>" not in labels
    reviews = page(admin_client_logged_in, f"/admin/labeling/review/?q=AV{target.aid}")
    assert f">av{target.aid}</a>" in reviews and f">av{other.aid}</a>" not in reviews


# --- filters ------------------------------------------------------------------------


def test_filters_have_readable_titles(admin_client_logged_in, make_videos, three_labelers):
    label_conflicts(make_videos(1), three_labelers)  # "labeled by" lists only people who labeled
    body = page(admin_client_logged_in, VIDEOS)
    titles = [html.unescape(title) for title in re.findall(r'<details data-filter-title="([^"]+)"', body)]

    assert titles == ["consensus label", "open conflict", "review", "number of human votes", "labeled by",
                      "model labels", "publication date"]
    assert "By value" not in body and "By is inconsistent" not in body
    labels = page(admin_client_logged_in, "/admin/labeling/label/")
    assert re.findall(r'<details data-filter-title="([^"]+)"', labels) == ["answer", "source", "undone", "labeler", "date"]


def test_filters_select_the_right_videos(admin_client_logged_in, make_videos, three_labelers, reviewer, vote, make_user):
    conflict, resolved, yes, no, tie, unlabeled, model_only = make_videos(7)
    ann, bob, cai = three_labelers
    label_conflicts([conflict, resolved], three_labelers)
    Review.objects.create(video=resolved, reviewer=reviewer, value=False)
    vote(yes, ann, True)
    vote(no, bob, False)
    vote(tie, ann, True)
    vote(tie, cai, False)
    Label.objects.create(video=model_only, user=make_user("scorer", group="admins"), value=True, source=LabelSource.MODEL)

    def aids(query: str) -> set[int]:
        return listed_aids(page(admin_client_logged_in, f"{VIDEOS}?{query}"))

    assert aids("conflict=yes") == {conflict.aid, tie.aid}
    assert aids("conflict=no") == {resolved.aid, yes.aid, no.aid, unlabeled.aid, model_only.aid}
    assert aids("consensus=yes") == {conflict.aid, yes.aid}
    assert aids("consensus=no") == {resolved.aid, no.aid}
    assert aids("consensus=tie") == {tie.aid}
    assert aids("consensus=unlabeled") == {unlabeled.aid, model_only.aid}  # a model's label is no vote
    assert aids("reviewed=yes") == {resolved.aid}
    assert aids("votes=3%2B") == {conflict.aid, resolved.aid}
    assert aids("votes=0") == {unlabeled.aid, model_only.aid}
    assert aids(f"labeler={bob.pk}") == {conflict.aid, resolved.aid, no.aid}
    assert aids("model_labels=yes") == {model_only.aid}
    assert aids("conflict=yes&consensus=yes") == {conflict.aid}


def test_bad_filter_values_and_search_terms_are_no_server_error(admin_client_logged_in, make_videos):
    make_videos(2)
    for query in ("labeler=abc", "labeler=99999999999999999999999", "labeler=%C2%B2", "consensus=maybe", "votes=-1"):
        assert len(listed_aids(page(admin_client_logged_in, f"{VIDEOS}?{query}"))) == 2, query
    for url in (f"{VIDEOS}?q=%00", f"{VIDEOS}?q=av1%00", "/admin/labeling/label/?q=%00", "/admin/labeling/review/?q=x%00"):
        assert admin_client_logged_in.get(url).status_code == 200, url


# --- the change list fits a 1366 px screen -----------------------------------------------


def test_change_list_has_few_narrow_columns(admin_client_logged_in, make_videos, three_labelers):
    long_title = "【洛天依原创】" + "很长的标题" * 40
    (video,) = make_videos(1, title=long_title)
    label_conflicts([video], three_labelers)

    body = page(admin_client_logged_in, VIDEOS)

    headers = result_headers(body)
    assert headers[0] == "action-checkbox-column"
    columns = [re.search(r"column-(\w+)", header).group(1) for header in headers[1:]]
    assert columns == ["video", "short_title", "uploader", "published", "consensus_column", "last_labeled"]
    title_cell = re.search(r'<td class="field-short_title">(.*?)</td>', body).group(1)
    assert f'title="{long_title}"' in title_cell  # the whole title as a tooltip
    assert len(re.sub(r"<[^>]+>", "", title_cell)) <= 60
    consensus_cell = re.search(r'<td class="field-consensus_column">(.*?)</td>', body).group(1)
    text = re.sub(r"<[^>]+>", "", consensus_cell)
    assert text == "yes 2:1 · 67% · open conflict"


def test_consensus_cell_for_unlabeled_tied_and_reviewed(admin_client_logged_in, make_videos, three_labelers, reviewer, vote):
    unlabeled, tie, reviewed = make_videos(3)
    vote(tie, three_labelers[0], True)
    vote(tie, three_labelers[1], False)
    label_conflicts([reviewed], three_labelers)
    Review.objects.create(video=reviewed, reviewer=reviewer, value=False)

    body = page(admin_client_logged_in, f"{VIDEOS}?o=1")  # by aid
    cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r'<td class="field-consensus_column">(.*?)</td>', body)]

    assert cells == ["unlabeled", "tie 1:1 · 50% · open conflict", "no 2:1 · 67% · reviewed"]


def test_change_list_query_count_does_not_grow_with_rows(admin_client_logged_in, make_videos, three_labelers,
                                                         make_user, django_assert_max_num_queries):
    scorer = make_user("scorer", group="admins")

    def add(count: int) -> None:
        videos = make_videos(count)
        label_conflicts(videos, three_labelers)
        Label.objects.bulk_create([Label(video=v, user=scorer, value=False, source=LabelSource.MODEL) for v in videos])

    urls = [VIDEOS, f"{VIDEOS}?conflict=yes&o=-5", f"{VIDEOS}?labeler={three_labelers[0].pk}&q=测试曲",
            "/admin/labeling/label/", "/admin/labeling/label/?source__exact=human"]
    add(3)
    small = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            page(admin_client_logged_in, url)
        small[url] = len(queries)

    add(60)
    for url in urls:
        with django_assert_max_num_queries(small[url]):
            body = page(admin_client_logged_in, url)
        assert len(listed_aids(body)) == 50 or "label" in url  # a full page of rows


# --- the change view ------------------------------------------------------------------


def test_history_rows_are_titled_by_who_said_what_not_by_internal_ids(admin_client_logged_in, make_video,
                                                                      three_labelers, reviewer):
    video = make_video(aid=104902138)
    label_conflicts([video], three_labelers)
    Review.objects.create(video=video, reviewer=reviewer, value=False, note="a cover")

    body = page(admin_client_logged_in, f"{VIDEOS}{video.pk}/change/")

    assert f"av{video.pk}:" not in body and f"→ av{video.pk}" not in body
    for name, answer in (("ann", "yes"), ("bob", "no"), ("cai", "yes")):
        assert re.search(rf"{name}: {answer} \(human\) at \d{{4}}-\d\d-\d\d \d\d:\d\d", body), name
    assert re.search(r"rita: review no at \d{4}-\d\d-\d\d \d\d:\d\d", body)


def test_change_view_reads_as_a_review_page(admin_client_logged_in, make_video, three_labelers, make_user, vote):
    video = make_video(raw={"aid": 1, "title": "原曲", "owner": {"name": "某P"}})
    ann, bob, _ = three_labelers
    scorer = make_user("scorer", group="admins")
    now = timezone.now()
    first = vote(video, ann, False)
    replaced = vote(video, bob, True)
    vote(video, bob, False)
    undone = vote(video, ann, True)
    Label.objects.filter(pk=undone.pk).update(retracted_at=now)
    machine = Label.objects.create(video=video, user=scorer, value=True, source=LabelSource.MODEL)
    for offset, label in enumerate([first, replaced, Label.objects.get(video=video, user=bob, value=False), undone, machine]):
        Label.objects.filter(pk=label.pk).update(created_at=now - timedelta(minutes=10 - offset))

    body = page(admin_client_logged_in, f"{VIDEOS}{video.pk}/change/")

    assert "Consensus (human votes only; the latest review decides)" in body
    assert re.sub(r"<[^>]+>", "", re.search(r'<div class="readonly">(.*?)</div>', body).group(1)) == "no 0:2 · 100%"
    assert f'href="/labeling/videos/{video.aid}/"' in body  # the labeling history page
    assert f"?q=av{video.aid}" in body
    # History newest first, each row saying whether it counts; the model's label marked as such.
    rows = re.findall(r"(\w+): (yes|no) \((human|model)\) at", body)
    assert rows == [("scorer", "yes", "model"), ("ann", "yes", "human"), ("bob", "no", "human"),
                    ("bob", "yes", "human"), ("ann", "no", "human")]
    statuses = re.findall(r'<td class="field-vote_status">\s*(.*?)\s*</td>', body)
    assert statuses[0] == "never a vote (model label)"
    assert statuses[1].startswith("undone ")
    assert statuses[2:] == ["<strong>counts</strong>", "replaced by a later answer", "<strong>counts</strong>"]
    # The imported record as JSON, not a Python repr.
    assert "&quot;owner&quot;: {" in body and "{&#x27;aid&#x27;" not in body


def test_saving_a_video_keeps_its_read_only_history(admin_client_logged_in, make_video, three_labelers, reviewer):
    video = make_video()
    label_conflicts([video], three_labelers)
    Review.objects.create(video=video, reviewer=reviewer, value=True)
    url = f"{VIDEOS}{video.pk}/change/"
    body = page(admin_client_logged_in, url)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body))
    assert hidden["labels-TOTAL_FORMS"] == "3" and hidden["reviews-TOTAL_FORMS"] == "1"

    response = admin_client_logged_in.post(url, {
        **hidden, "aid": video.aid, "bvid": video.bvid, "title": "新的标题", "description": "", "tags": "",
        "uploader_name": "", "uploader_mid": "", "published_at_0": "", "published_at_1": "", "duration": "",
        "cover_url": "",
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    video.refresh_from_db()
    assert video.title == "新的标题"
    assert Label.objects.filter(video=video, retracted_at__isnull=True).count() == 3 and Review.objects.count() == 1


def test_add_view_still_works(admin_client_logged_in):
    body = page(admin_client_logged_in, f"{VIDEOS}add/")
    assert 'name="aid"' in body and "Consensus" not in body


def test_label_list_shows_whether_each_label_counts(admin_client_logged_in, make_video, three_labelers, make_user):
    video = make_video()
    label_conflicts([video], three_labelers)
    Label.objects.create(video=video, user=make_user("scorer", group="admins"), value=False, source=LabelSource.MODEL)

    body = page(admin_client_logged_in, "/admin/labeling/label/")

    assert body.count("<strong>counts</strong>") == 3
    assert body.count("never a vote (model label)") == 1
    assert f"av{video.aid}</a>" in body


def test_label_change_page_is_titled_meaningfully(admin_client_logged_in, make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)
    label = Label.objects.get(user__username="bob")

    body = page(admin_client_logged_in, f"/admin/labeling/label/{label.pk}/change/")

    assert "bob: no (human) at " in body
    assert f"av{video.aid}</a>" in body


# --- read-only history ----------------------------------------------------------------


def test_labels_are_read_only_in_the_admin(admin_client_logged_in, make_video, three_labelers):
    label_conflicts([make_video()], three_labelers)

    label = Label.objects.first()
    assert admin_client_logged_in.get("/admin/labeling/label/?value__exact=1").status_code == 200
    assert admin_client_logged_in.get("/admin/labeling/label/add/").status_code == 403
    assert admin_client_logged_in.post(f"/admin/labeling/label/{label.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Label.objects.filter(pk=label.pk).exists()
    assert Video.objects.count() == 1
