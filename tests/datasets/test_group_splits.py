"""Group-aware splits: members of one duplicate group (any task's, unioned) or with the
same composed text stay in one split; without groups the split is exactly the
per-member one of before (the existing content-hash tests pin that too)."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets import services
from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetTaskType,
    DatasetVersionItem,
    DuplicateGroup,
    DuplicateGroupMember,
    DuplicateKind,
    Split,
)
from datasets.services.build_state import BuildMember
from datasets.services.splits import _split_rank_key, _split_sizes, assign_splits, split_units
from tests.datasets.conftest import MODEL_KEY
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos

RATIOS = (0.7, 0.15, 0.15)
STOPPED_CLOCK = lambda: 0.0  # noqa: E731


def members(count: int, *, seed: int = 1) -> list[BuildMember]:
    rng = random.Random(seed)
    return [BuildMember(index, 10_000 + index, rng.random() < 0.4, False, f"c{index}") for index in range(count)]


def per_member_splits(items: list[BuildMember], seed: int) -> dict[int, str]:
    """The assignment before groups existed, written out independently."""
    out = {}
    for value in (False, True):
        ranked = sorted((m for m in items if m.label is value), key=lambda m: _split_rank_key(seed, m.aid))
        train, val, _ = _split_sizes(len(ranked), RATIOS)
        for position, member in enumerate(ranked):
            out[member.aid] = "train" if position < train else "val" if position < train + val else "test"
    return out


def test_without_groups_the_split_is_exactly_the_per_member_one():
    items = members(500)
    assert assign_splits(items, RATIOS, seed=7) == 0
    assert {m.aid: m.split for m in items} == per_member_splits(items, 7)


def test_the_group_path_with_one_member_groups_is_the_per_member_split_too():
    items = members(500, seed=2)
    for member in items:
        member.groups = (member.video_id + 1,)  # groups of one: nothing to keep together
    assert assign_splits(items, RATIOS, seed=9) == 0
    assert {m.aid: m.split for m in items} == per_member_splits(items, 9)


def test_planted_groups_never_cross_splits_and_the_same_seed_gives_the_same_splits():
    items = members(600)
    rng = random.Random(3)
    planted = [rng.sample(range(600), rng.randint(2, 6)) for _ in range(40)]
    for group_id, indexes in enumerate(planted, start=1):
        for index in indexes:
            items[index].groups = (*items[index].groups, group_id)
    items[10].checksum = items[11].checksum = "same-text"  # identical texts, no group
    kept = assign_splits(items, RATIOS, seed=11)
    first = {m.aid: m.split for m in items}

    for unit in split_units(items):
        assert len({m.split for m in unit}) == 1, [(m.aid, m.split) for m in unit]
    assert items[10].split == items[11].split
    assert kept == sum(1 for unit in split_units(items) if len(unit) > 1) >= 20  # overlapping groups merge

    again = [BuildMember(m.video_id, m.aid, m.label, False, m.checksum, groups=m.groups) for m in items]
    assign_splits(again, RATIOS, seed=11)
    assert {m.aid: m.split for m in again} == first
    counts = {split: sum(m.split == split for m in items) for split in Split.values}
    largest = max(len(unit) for unit in split_units(items))
    # Approximately stratified: each label's cut is off by at most half of one unit.
    assert abs(counts["train"] - 420) <= largest and abs(counts["test"] - 90) <= largest, (counts, largest)


def test_groups_linked_through_a_shared_member_are_one_unit():
    items = members(5)
    items[0].groups, items[1].groups = (1,), (1, 2)
    items[2].groups = (2,)
    units = sorted((sorted(m.aid for m in unit) for unit in split_units(items)), key=len)
    assert units[-1] == [10_000, 10_001, 10_002]
    assert len(units) == 3


@pytest.mark.django_db
def test_a_build_keeps_duplicate_groups_in_one_split_with_the_same_round_trips(registry_file):
    labelers = make_labelers(3)

    def build(count: int, start_aid: int, group_every: int | None):
        videos = make_videos(count, start_aid=start_aid)
        label(videos, labelers, lambda index, video: POSITIVE if index % 3 else NEGATIVE)
        groups = []
        if group_every:
            task = DatasetTask.objects.create(type=DatasetTaskType.DEDUPLICATION, status=DatasetTaskStatus.COMPLETED)
            for first in range(0, count - group_every, group_every * 2):
                chosen = videos[first : first + group_every]
                group = DuplicateGroup.objects.create(task=task, kind=DuplicateKind.EXACT, size=len(chosen))
                DuplicateGroupMember.objects.bulk_create(DuplicateGroupMember(group=group, video=v) for v in chosen)
                groups.append([v.pk for v in chosen])
        services.embedding_models_sync()
        request = services.BuildRequest(aid_list=[v.aid for v in videos], embedding_model_key=MODEL_KEY,
                                        dataset_name=f"g{start_aid}")
        task = services.dataset_build_request(request, enqueue=False).task
        with CaptureQueriesContext(connection) as queries:
            task = services.dataset_version_build(task_id=task.pk, clock=STOPPED_CLOCK)
        assert task.status == DatasetTaskStatus.COMPLETED, task.error
        return task.dataset_version, groups, len(queries.captured_queries)

    version, groups, small_queries = build(40, 50_000, group_every=4)
    split_of = dict(DatasetVersionItem.objects.filter(version=version).values_list("video_id", "split"))
    assert groups
    for group in groups:
        assert len({split_of[video_id] for video_id in group}) == 1
    assert version.selection["split_groups_kept"] == len(groups)
    assert task_result(version)["split_groups_kept"] == len(groups)

    _, _, large_queries = build(400, 60_000, group_every=4)
    assert small_queries == large_queries


def task_result(version):
    return version.tasks.get().result
