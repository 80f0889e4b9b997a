"""sampling_select: strategies, filters, and clear errors on bad input."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.selectors import sampling_count, sampling_select
from labeling.models import Video
from tests.datasets.factories import (
    MAJORITY_TRUE,
    NEGATIVE,
    POSITIVE,
    TIE,
    UNLABELED,
    label,
    make_labelers,
    make_videos,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(db):
    users = make_labelers(3)
    positive = make_videos(30, start_aid=1000)  # published 2024-01-01 + index days, duration 60 + index
    negative = make_videos(10, start_aid=2000)
    unlabeled = make_videos(5, start_aid=3000)
    ties = make_videos(2, start_aid=4000)
    majority = make_videos(3, start_aid=5000)
    label(positive, users, POSITIVE)
    label(negative, users, NEGATIVE)
    label(unlabeled, users, UNLABELED)
    label(ties, users, TIE)
    label(majority, users, MAJORITY_TRUE)
    return {"positive": positive, "negative": negative, "unlabeled": unlabeled, "ties": ties, "majority": majority}


def aids(videos) -> list[int]:
    return sorted(video.aid for video in videos)


def test_all_is_every_video_with_a_consensus_label_in_one_query(corpus):
    with CaptureQueriesContext(connection) as queries:
        result = sampling_select(strategy="all")

    assert len(queries.captured_queries) == 1
    assert result.aid_list == aids(corpus["positive"] + corpus["negative"] + corpus["majority"])
    assert result.total_available == result.sampled_count == 43
    assert result.filters_applied == {"limit": None}
    assert result.sampling_info["sample_ratio"] == 1.0
    assert (result.sampling_info["positives"], result.sampling_info["negatives"]) == (33, 10)
    assert result.as_dict()["sampled_count"] == 43


def test_labeled_includes_ties_and_consistent_excludes_every_conflict(corpus):
    labeled = sampling_select(strategy="labeled")
    consistent = sampling_select(strategy="consistent")

    assert labeled.aid_list == aids(corpus["positive"] + corpus["negative"] + corpus["ties"] + corpus["majority"])
    assert labeled.sampling_info["undecided"] == 2
    assert consistent.aid_list == aids(corpus["positive"] + corpus["negative"])


def test_random_takes_exactly_limit_and_a_seed_makes_it_reproducible(corpus):
    first = sampling_select(strategy="random", limit=12, seed=5)
    again = sampling_select(strategy="random", limit=12, seed=5)
    other = sampling_select(strategy="random", limit=12, seed=6)
    unseeded = sampling_select(strategy="random", limit=12)

    assert first.sampled_count == 12 and first.total_available == 43
    assert first.aid_list == again.aid_list
    assert first.aid_list != other.aid_list
    assert set(first.aid_list) <= set(sampling_select(strategy="all").aid_list)
    assert unseeded.sampled_count == 12
    assert sampling_select(strategy="random").filters_applied == {"limit": 1000}  # the ML panel's default
    assert sampling_select(strategy="random", limit=500).sampled_count == 43


def test_stratified_keeps_label_proportions_and_balanced_evens_them(corpus):
    # 33 positive : 10 negative among 43.
    stratified = sampling_select(strategy="stratified", limit=20, seed=1)
    balanced = sampling_select(strategy="balanced", limit=20, seed=1)
    capped = sampling_select(strategy="balanced", limit=30, seed=1)

    assert (stratified.sampling_info["positives"], stratified.sampling_info["negatives"]) == (15, 5)
    assert (balanced.sampling_info["positives"], balanced.sampling_info["negatives"]) == (10, 10)
    # Only 10 negatives exist: the rest of the sample comes from the positives.
    assert (capped.sampling_info["positives"], capped.sampling_info["negatives"]) == (20, 10)
    assert stratified.total_available == 43


def test_label_value_filters_on_the_consensus(corpus):
    negatives = sampling_select(strategy="all", label_value=False)
    positives = sampling_select(strategy="consistent", label_value=True)

    assert negatives.aid_list == aids(corpus["negative"])
    assert negatives.filters_applied["label_value"] is False
    assert positives.aid_list == aids(corpus["positive"])


def test_metadata_filters(corpus):
    Video.objects.filter(aid=1003).update(title="初音ミク 《Special》 cover", uploader_mid=777)
    Video.objects.filter(aid=1004).update(tags="VOCALOID,洛天依")

    def select(**metadata_filter):
        return sampling_select(strategy="consistent", metadata_filter=metadata_filter).aid_list

    assert select(published_after="2024-01-29") == [1028, 1029]
    assert select(published_after="2024-01-29T00:00:00+00:00", published_before="2024-01-30") == [1028]
    assert select(published_before=datetime(2024, 1, 3, tzinfo=timezone.utc).isoformat()) == [1000, 1001, 2000, 2001]
    assert select(min_duration=88) == [1028, 1029]
    assert select(max_duration=60) == [1000, 2000]
    assert select(uploader_mid=777) == [1003]
    assert select(title_contains="special") == [1003]
    assert select(title_contains="100%") == []  # LIKE wildcards are literal
    assert select(tags_contains="洛天依") == [1004]
    result = sampling_select(strategy="all", metadata_filter={"min_duration": 88, "title_contains": " 测试 "})
    assert result.filters_applied["metadata_filter"] == {"min_duration": 88, "title_contains": "测试"}


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"strategy": "everything"}, "strategy", "unknown strategy 'everything' (choose one of: all, labeled"),
        ({"strategy": "random", "limit": 0}, "limit", "between 1 and"),
        ({"strategy": "random", "limit": "5"}, "limit", "must be an integer"),
        ({"strategy": "all", "label_value": "yes"}, "label_value", "true or false"),
        ({"strategy": "random", "seed": 1.5}, "seed", "integer"),
        ({"strategy": "all", "metadata_filter": {"colour": "red"}}, "metadata_filter.colour", "unknown filter"),
        ({"strategy": "all", "metadata_filter": {"published_after": "last tuesday"}},
         "metadata_filter.published_after", "not an ISO date"),
        ({"strategy": "all", "metadata_filter": {"min_duration": -1}}, "metadata_filter.min_duration", "non-negative"),
        ({"strategy": "all", "metadata_filter": {"title_contains": ""}}, "metadata_filter.title_contains", "non-empty"),
        ({"strategy": "all", "metadata_filter": ["min_duration"]}, "metadata_filter", "must be an object"),
        ({"strategy": "all", "metadata_filter": {"title_contains": "a\u0000b"}}, "metadata_filter.title_contains",
         "NUL"),
        ({"strategy": "all", "metadata_filter": {"published_before": "2024-01-01\x00"}},
         "metadata_filter.published_before", "NUL"),
    ],
)
def test_bad_sampling_input_names_the_field(corpus, kwargs, field, fragment):
    with pytest.raises(ValidationError) as raised:
        sampling_select(**kwargs)

    assert fragment in " ".join(raised.value.message_dict[field])


def test_an_empty_corpus_samples_nothing(db):
    result = sampling_select(strategy="random", limit=10)
    assert (result.aid_list, result.total_available, result.sampling_info["sample_ratio"]) == ([], 0, 0.0)
    assert sampling_select(strategy="stratified", limit=10).aid_list == []


# --- sampling for a build: among the videos the build keeps ---------------------------------


def test_include_inconsistent_false_samples_only_agreed_labels(corpus):
    result = sampling_select(strategy="random", limit=40, seed=2, include_inconsistent=False)

    # 40 eligible videos (30 yes + 10 no agreed on); the 3 with a disagreeing labeler are not drawn.
    assert result.sampled_count == 40 and result.total_available == 40
    assert not set(result.aid_list) & set(aids(corpus["majority"]))
    assert result.filters_applied["include_inconsistent"] is False


def test_include_inconsistent_true_keeps_majority_labels_but_never_ties(corpus):
    result = sampling_select(strategy="labeled", include_inconsistent=True)

    assert result.aid_list == aids(corpus["positive"] + corpus["negative"] + corpus["majority"])


def test_balanced_for_a_build_gives_equal_classes_of_eligible_videos(corpus):
    result = sampling_select(strategy="balanced", limit=20, seed=1, include_inconsistent=False)

    assert (result.sampling_info["positives"], result.sampling_info["negatives"]) == (10, 10)
    assert not set(result.aid_list) & set(aids(corpus["majority"]))


@pytest.mark.parametrize("kwargs", [
    {"strategy": "all"},
    {"strategy": "all", "include_inconsistent": False},
    {"strategy": "labeled"},
    {"strategy": "random", "limit": 12, "seed": 3},
    {"strategy": "random"},
    {"strategy": "stratified", "limit": 20, "include_inconsistent": False},
    {"strategy": "balanced", "limit": 30, "include_inconsistent": True},
    {"strategy": "consistent", "label_value": True, "metadata_filter": {"min_duration": 70}},
])
def test_sampling_count_agrees_with_sampling_select_in_one_query(corpus, kwargs):
    with CaptureQueriesContext(connection) as queries:
        counted = sampling_count(**kwargs)

    selected = sampling_select(**kwargs)
    assert len(queries.captured_queries) == 1
    assert (counted.total_available, counted.sampled_count) == (selected.total_available, selected.sampled_count)


def test_sampling_count_validates_like_sampling_select(corpus):
    with pytest.raises(ValidationError) as raised:
        sampling_count(strategy="random", limit=0, metadata_filter={"colour": "red"})

    assert "limit" in raised.value.message_dict
