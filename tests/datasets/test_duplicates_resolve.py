"""Keep/exclude on duplicate groups: exclusions written (rule ``duplicate``), reverted by
a re-resolve, honoured by dataset builds; the bulk "keep the lowest aid" choice."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from datasets import services
from datasets.models import DatasetTaskStatus, DatasetVersionItem, DuplicateGroup, Exclusion
from datasets.services.duplicates import (
    deduplication_run,
    duplicate_group_resolve,
    duplicate_groups_keep_lowest_aid,
)
from tests.datasets.cleaning_factories import video
from tests.datasets.conftest import MODEL_KEY
from tests.datasets.curation_support import RecordingProgress
from tests.datasets.duplicate_factories import dedup_task
from tests.datasets.factories import POSITIVE, label, make_labelers

pytestmark = pytest.mark.django_db


@pytest.fixture
def exact_groups():
    """Two exact groups: aids 1,2,3 (same text) and 10,11."""
    videos = [video(aid, "千本桜", "原曲") for aid in (3, 1, 2)] + [video(aid, "Tell Your World", "") for aid in (10, 11)]
    task = dedup_task({"kinds": ["exact"]})
    deduplication_run(task, RecordingProgress())
    return task, {v.aid: v for v in videos}


def active_duplicate_aids() -> set[int]:
    return set(Exclusion.objects.filter(rule="duplicate", reverted_at__isnull=True).values_list("video__aid", flat=True))


def test_resolve_excludes_the_others_and_names_the_kept_video(exact_groups, make_user):
    task, by_aid = exact_groups
    boss = make_user("boss", group="admins")
    group = DuplicateGroup.objects.get(task=task, size=3)

    resolved = duplicate_group_resolve(group.pk, keep_video_ids=[by_aid[2].pk], user=boss)

    assert resolved.resolved_by == boss and resolved.resolved_at is not None
    assert dict(group.members.values_list("video__aid", "keep")) == {1: False, 2: True, 3: False}
    assert active_duplicate_aids() == {1, 3}
    exclusion = Exclusion.objects.get(video=by_aid[1])
    assert exclusion.task == task and "av2" in exclusion.reason and f"group {group.pk}" in exclusion.reason


def test_re_resolve_reverts_exclusions_no_longer_wanted(exact_groups):
    task, by_aid = exact_groups
    group = DuplicateGroup.objects.get(task=task, size=3)
    duplicate_group_resolve(group.pk, keep_video_ids=[by_aid[2].pk])

    duplicate_group_resolve(group.pk, keep_video_ids=[by_aid[1].pk, by_aid[2].pk])

    assert active_duplicate_aids() == {3}
    assert Exclusion.objects.filter(video=by_aid[1], reverted_at__isnull=False).count() == 1
    assert dict(group.members.values_list("video__aid", "keep")) == {1: True, 2: True, 3: False}


@pytest.mark.parametrize(("keep", "field", "text"), [
    ([], "keep_video_ids", "keep at least one"),
    (["x"], "keep_video_ids", "list of video ids"),
    ("outsider", "keep_video_ids", "not in group"),
])
def test_bad_choices_write_nothing(exact_groups, keep, field, text):
    task, by_aid = exact_groups
    group = DuplicateGroup.objects.get(task=task, size=3)
    if keep == "outsider":
        keep = [by_aid[10].pk]
    with pytest.raises(ValidationError) as raised:
        duplicate_group_resolve(group.pk, keep_video_ids=keep)
    assert text in " ".join(raised.value.message_dict[field])
    assert not Exclusion.objects.exists()
    group.refresh_from_db()
    assert group.resolved_at is None and set(group.members.values_list("keep", flat=True)) == {True}


def test_unknown_group_is_a_clear_error():
    with pytest.raises(ValidationError) as raised:
        duplicate_group_resolve(424242, keep_video_ids=[1])
    assert "no duplicate group 424242" in raised.value.message_dict["group"][0]


def test_keep_lowest_aid_in_every_unresolved_group(exact_groups):
    task, by_aid = exact_groups
    big = DuplicateGroup.objects.get(task=task, size=3)
    duplicate_group_resolve(big.pk, keep_video_ids=[by_aid[3].pk])  # already decided: left alone

    outcome = duplicate_groups_keep_lowest_aid(task.pk)

    assert outcome == {"groups": 1, "excluded": 1}
    assert active_duplicate_aids() == {1, 2, 11}
    assert "exact duplicate of av10" in Exclusion.objects.get(video=by_aid[11]).reason
    assert DuplicateGroup.objects.filter(task=task, resolved_at__isnull=True).count() == 0
    assert duplicate_groups_keep_lowest_aid(task.pk) == {"groups": 0, "excluded": 0}


def test_keep_lowest_aid_refuses_a_foreign_task():
    with pytest.raises(ValidationError):
        duplicate_groups_keep_lowest_aid("not-a-uuid")


def test_builds_skip_excluded_duplicates_unless_asked(exact_groups, registry_file, celery_eager,
                                                      django_capture_on_commit_callbacks):
    task, by_aid = exact_groups
    label(list(by_aid.values()), make_labelers(1), POSITIVE)
    duplicate_groups_keep_lowest_aid(task.pk)

    def build(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            built = services.dataset_build_request(services.BuildRequest(
                embedding_model_key=MODEL_KEY, aid_list=sorted(by_aid), **kwargs)).task
        built.refresh_from_db()
        assert built.status == DatasetTaskStatus.COMPLETED, built.error
        return set(DatasetVersionItem.objects.filter(version=built.dataset_version).values_list("video__aid", flat=True))

    assert build() == {1, 10}
    assert build(include_excluded=True) == {1, 2, 3, 10, 11}
