"""Cleaning tasks: preview == run, exclusions never delete, revert per video and per task,
bounded queries whatever the number of videos, bad input writes nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, Exclusion
from datasets.services.cleaning import PREVIEW_EXAMPLES, cleaning_preview, cleaning_run, exclusions_revert
from labeling.models import Video
from tests.datasets.cleaning_factories import bulk_videos, video

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus():
    return [
        video(1, "歌", "暂无简介"),
        video(2, "初音ミク", "https://b23.tv/abc"),
        video(3, "An English title", "加群领取"),
        video(4, "안녕하세요 노래", "설명"),
        video(5, "-", "-"),
    ]


RULE_CASES = [
    ("placeholder_text", {}),
    ("short_title", {"min_length": 4}),
    ("links_or_emoji_description", {}),
    ("banned_words", {"words": ["加群"]}),
    ("language", {}),
    ("custom", {"expression": "length(title) < 3 or description contains 'b23'"}),
]


@pytest.mark.parametrize("rule, params", RULE_CASES)
def test_the_preview_count_is_what_the_run_excludes(corpus, rule, params):
    preview = cleaning_preview(rule, params)
    assert preview.would_exclude > 0
    task = cleaning_run(rule, params)

    assert task.type == DatasetTaskType.CLEANING and task.status == DatasetTaskStatus.COMPLETED
    assert task.result["excluded"] == preview.would_exclude
    written = Exclusion.objects.filter(task=task)
    assert written.count() == preview.would_exclude
    assert sorted(written.values_list("video__aid", flat=True)) == [m.aid for m in preview.examples]
    assert all(e.rule == rule and e.reason for e in written)
    assert Video.objects.count() == len(corpus)  # never a deletion


def test_a_second_run_adds_only_new_matches(corpus):
    first = cleaning_run("short_title", {"min_length": 4})
    assert first.result["excluded"] == 2  # 歌, -
    video(6, "ab")
    preview = cleaning_preview("short_title", {"min_length": 4})
    assert (preview.matched, preview.already_excluded, preview.would_exclude) == (3, 2, 1)
    second = cleaning_run("short_title", {"min_length": 4})
    assert second.result["excluded"] == 1
    assert Exclusion.objects.filter(rule="short_title", reverted_at__isnull=True).count() == 3


def test_one_video_can_be_excluded_by_several_rules(corpus):
    cleaning_run("short_title", {"min_length": 4})
    cleaning_run("placeholder_text", {})
    assert Exclusion.objects.filter(video__aid=5, reverted_at__isnull=True).count() == 2


def test_preview_lists_at_most_20_examples_in_aid_order():
    bulk_videos(30)
    preview = cleaning_preview("short_title", {"min_length": 2})
    assert preview.would_exclude == 30
    assert [m.aid for m in preview.examples] == list(range(100_000, 100_000 + PREVIEW_EXAMPLES))


def test_revert_per_video_and_per_task(corpus, make_user):
    admin = make_user("boss", group="admins")
    short = cleaning_run("short_title", {"min_length": 4})
    placeholder = cleaning_run("placeholder_text", {"fields": ["description"]})  # videos 1 and 5

    assert exclusions_revert(aid=5, user=admin) == 2  # both rules' exclusions of video 5
    reverted = Exclusion.objects.filter(video__aid=5)
    assert all(e.reverted_at is not None and e.reverted_by == admin for e in reverted)

    remaining_short = Exclusion.objects.filter(task=short, reverted_at__isnull=True).count()
    assert exclusions_revert(task_id=str(short.pk)) == remaining_short == 1
    assert not Exclusion.objects.filter(task=short, reverted_at__isnull=True).exists()
    assert Exclusion.objects.filter(task=placeholder, reverted_at__isnull=True).count() == 1  # video 1
    # Reverted rows stay as history; the rule may exclude the video again.
    assert cleaning_preview("short_title", {"min_length": 4}).would_exclude == 2
    assert Exclusion.objects.count() == 4


@pytest.mark.parametrize("kwargs, key", [
    ({}, "non_field_errors"),
    ({"aid": 1, "task_id": "x"}, "non_field_errors"),
    ({"aid": -3}, "aid"),
    ({"task_id": "not-a-uuid"}, "task_id"),
    ({"task_id": "6f1c1d3e-0000-4000-8000-000000000000"}, "task_id"),
    ({"exclusion_ids": []}, "exclusion_ids"),
    ({"exclusion_ids": ["1"]}, "exclusion_ids"),
])
def test_bad_revert_input_is_refused_and_nothing_changes(corpus, kwargs, key):
    cleaning_run("short_title", {"min_length": 4})
    with pytest.raises(ValidationError) as raised:
        exclusions_revert(**kwargs)
    assert key in raised.value.message_dict
    assert Exclusion.objects.filter(reverted_at__isnull=False).count() == 0


def test_bad_rule_input_writes_nothing(corpus):
    for rule, params in [("short_title", {"min_length": -1}), ("custom", {"expression": "title ="}),
                         ("banned_words", {"words": []}), ("no_such_rule", {})]:
        with pytest.raises(ValidationError):
            cleaning_run(rule, params)
    assert not Exclusion.objects.exists()
    assert not DatasetTask.objects.exists()


def _queries(action) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return len(captured.captured_queries)


@pytest.mark.parametrize("rule, params", [
    ("placeholder_text", {"fields": ["description"]}),  # a scan in Python
    ("short_title", {"min_length": 2}),  # SQL
    ("custom", {"expression": "length(title) < 2"}),  # SQL from the filter language
])
def test_queries_do_not_grow_with_the_number_of_videos(rule, params):
    bulk_videos(10, start_aid=1)
    small_preview = _queries(lambda: cleaning_preview(rule, params))
    small_run = _queries(lambda: cleaning_run(rule, params))
    Exclusion.objects.all().delete()
    bulk_videos(2500, start_aid=1000)  # more than one scan chunk
    large_preview = _queries(lambda: cleaning_preview(rule, params))
    large_run = _queries(lambda: cleaning_run(rule, params))
    assert Exclusion.objects.filter(rule=rule).count() == 2510
    assert (small_preview, small_run) == (large_preview, large_run)


def test_command_previews_and_runs(corpus, capsys):
    call_command("clean_videos", "--rule", "banned_words", "--param", "words=加群,广告", "--dry-run")
    out = capsys.readouterr().out
    assert "1 video(s) would be excluded" in out and "av3" in out
    assert not Exclusion.objects.exists()
    call_command("clean_videos", "--rule", "banned_words", "--param", "words=加群,广告")
    assert list(Exclusion.objects.values_list("video__aid", flat=True)) == [3]
    with pytest.raises(CommandError, match="params.min_length"):
        call_command("clean_videos", "--rule", "short_title", "--param", "min_length=0")
    with pytest.raises(CommandError, match="name=value"):
        call_command("clean_videos", "--rule", "short_title", "--param", "min_length")


def test_task_cleanup_keeps_cleaning_tasks_with_active_exclusions(corpus):
    from datetime import timedelta

    from django.utils import timezone

    from datasets import services

    holding = cleaning_run("short_title", {"min_length": 4})
    reverted = cleaning_run("banned_words", {"words": ["加群"]})
    exclusions_revert(task_id=str(reverted.pk))
    DatasetTask.objects.update(completed_at=timezone.now() - timedelta(days=3))

    assert services.dataset_tasks_cleanup(max_age_hours=24) == 1
    assert list(DatasetTask.objects.values_list("pk", flat=True)) == [holding.pk]
    assert Exclusion.objects.filter(task__isnull=True).count() == 1  # the reverted one stays as history
