"""Deduplication runner: exact groups by composed-text checksum, near groups by planted
vectors under a threshold, idempotent reruns, clear errors with nothing written, and a
fixed number of statements however many videos."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.models import DuplicateGroup, DuplicateGroupMember, DuplicateKind
from datasets.services import duplicates
from datasets.services.duplicates import deduplication_params_clean, deduplication_run
from datasets.similarity_index import IndexKind, IndexPlan
from labeling.models import Video
from tests.datasets.cleaning_factories import video
from tests.datasets.curation_support import RecordingProgress
from tests.datasets.duplicate_factories import (
    dedup_task,
    distinct_videos,
    embed,
    embedding_model,
    planted_vectors,
)

pytestmark = pytest.mark.django_db


def groups_as_aids(task, kind: str) -> list[list[int]]:
    return sorted(
        sorted(DuplicateGroupMember.objects.filter(group=group).values_list("video__aid", flat=True))
        for group in DuplicateGroup.objects.filter(task=task, kind=kind)
    )


# --- exact -------------------------------------------------------------------------------


def test_exact_groups_are_videos_whose_composed_text_is_the_same():
    video(1, "【初音ミク】千本桜", "原曲 <b>PV</b>", "VOCALOID,初音ミク")
    video(2, "【初音ミク】千本桜  ", "原曲 PV", "VOCALOID， 初音ミク")  # same after cleaning
    video(3, "【初音ミク】千本桜", "原曲 PV", "VOCALOID,初音ミク,VOCALOID")  # duplicate tag dropped
    video(4, "【初音ミク】千本桜", "原曲 PV 2", "VOCALOID,初音ミク")  # a different description
    video(5, "English title", "", "")
    video(6, "English   title", "", "")
    video(7, "", "", "")  # no text at all: never grouped
    video(8, "", "", "")
    task = dedup_task({"kinds": ["exact"]})

    result = deduplication_run(task, RecordingProgress())

    assert groups_as_aids(task, DuplicateKind.EXACT) == [[1, 2, 3], [5, 6]]
    assert result["exact"] == {"groups": 2, "videos": 5}
    assert result["groups"] == 2 and result["videos_in_groups"] == 5
    group = DuplicateGroup.objects.get(task=task, size=3)
    assert group.embedding_model is None and group.threshold is None and group.max_distance == 0.0
    assert set(group.members.values_list("keep", flat=True)) == {True}


def test_rerun_on_the_same_task_replaces_its_groups():
    video(1, "同じ", "", "")
    video(2, "同じ", "", "")
    task = dedup_task({"kinds": ["exact"]})
    other = dedup_task({"kinds": ["exact"]})
    deduplication_run(other, RecordingProgress())

    deduplication_run(task, RecordingProgress())
    deduplication_run(task, RecordingProgress())

    assert DuplicateGroup.objects.filter(task=task).count() == 1
    assert DuplicateGroupMember.objects.filter(group__task=task).count() == 2
    assert DuplicateGroup.objects.filter(task=other).count() == 1  # another task's groups untouched


# --- near --------------------------------------------------------------------------------


@pytest.fixture
def planted():
    """3 clusters of 4 near-identical texts, 30 unrelated ones; plus an exact pair."""
    model = embedding_model()
    vectors, clusters = planted_vectors(3, 4, 30)
    videos = distinct_videos(len(vectors))
    embed(model, videos, vectors)
    twin = Video.objects.create(aid=9999, title=videos[0].title, description=videos[0].description, tags="标签")
    return model, videos, clusters, twin


def test_near_groups_are_the_planted_clusters(planted):
    model, videos, clusters, twin = planted
    task = dedup_task({"kinds": ["exact", "near"], "embedding_model": model.key, "threshold": 0.05})

    result = deduplication_run(task, RecordingProgress())

    expected = sorted(
        sorted([videos[i].aid for i in range(len(videos)) if clusters[i] == cluster] + ([twin.aid] if cluster == 0 else []))
        for cluster in range(3)
    )
    assert groups_as_aids(task, DuplicateKind.NEAR) == expected
    assert groups_as_aids(task, DuplicateKind.EXACT) == [[videos[0].aid, twin.aid]]
    assert result["near"]["groups"] == 3 and result["near"]["pairs"] == 3 * 6
    assert result["near"]["index"] == "vector" and result["near"]["index_created"] is True
    group = DuplicateGroup.objects.filter(task=task, kind=DuplicateKind.NEAR).order_by("-size").first()
    assert group.embedding_model == model and group.threshold == 0.05 and 0 < group.max_distance < 0.05
    distances = dict(group.members.values_list("video__aid", "distance"))
    assert distances[videos[0].aid] == 0.0 and distances[twin.aid] == 0.0  # the anchor's text
    assert all(0 <= distance < 0.05 for distance in distances.values())


def test_threshold_is_respected():
    model = embedding_model()
    base = np.zeros(16, dtype=np.float32)
    base[0] = 1.0
    # cosine distance 1 - cos(angle): 0.02 and 0.08 from the base vector
    close, far = (np.zeros(16, dtype=np.float32) for _ in range(2))
    close[0], close[1] = 1 - 0.02, np.sqrt(1 - (1 - 0.02) ** 2)
    far[0], far[2] = 1 - 0.08, np.sqrt(1 - (1 - 0.08) ** 2)
    videos = distinct_videos(3)
    embed(model, videos, [base, close, far])

    tight = dedup_task({"kinds": ["near"], "embedding_model": model.key, "threshold": 0.05})
    deduplication_run(tight, RecordingProgress())
    loose = dedup_task({"kinds": ["near"], "embedding_model": model.key, "threshold": 0.1})
    deduplication_run(loose, RecordingProgress())

    assert groups_as_aids(tight, DuplicateKind.NEAR) == [[videos[0].aid, videos[1].aid]]
    assert groups_as_aids(loose, DuplicateKind.NEAR) == [[v.aid for v in videos]]
    member = DuplicateGroupMember.objects.get(group__task=loose, video=videos[2])
    assert member.distance == pytest.approx(0.08, abs=1e-5)


def test_near_rerun_is_idempotent_and_the_index_is_created_once(planted):
    model, *_ = planted
    task = dedup_task({"kinds": ["near"], "embedding_model": model.key})
    first = deduplication_run(task, RecordingProgress())
    second = deduplication_run(task, RecordingProgress())
    assert first["near"]["index_created"] is True and second["near"]["index_created"] is False
    assert DuplicateGroup.objects.filter(task=task).count() == 3
    assert first["near"]["pairs"] == second["near"]["pairs"]


def test_texts_without_a_vector_are_counted_not_grouped(planted):
    model, videos, *_ = planted
    Video.objects.create(aid=77777, title="没有向量的视频", description="", tags="")
    task = dedup_task({"kinds": ["near"], "embedding_model": model.key})
    result = deduplication_run(task, RecordingProgress())
    assert result["near"]["texts_without_vector"] == 1
    assert not DuplicateGroupMember.objects.filter(video__aid=77777).exists()


# --- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "field", "text"), [
    ({"kinds": ["fuzzy"]}, "kinds", "unknown kind"),
    ({"kinds": []}, "kinds", "exact and/or near"),
    ({"kinds": ["near"]}, "embedding_model", "need an embedding model"),
    ({"kinds": ["near"], "embedding_model": "nope"}, "embedding_model", "no embedding model 'nope'"),
    ({"kinds": ["near"], "embedding_model": "dup-model", "threshold": 0}, "threshold", "in (0, 0.5]"),
    ({"kinds": ["near"], "embedding_model": "dup-model", "threshold": 0.9}, "threshold", "in (0, 0.5]"),
    ({"kinds": ["near"], "embedding_model": "dup-model", "threshold": "x"}, "threshold", "must be a number"),
    ({"kinds": ["near"], "embedding_model": "dup-model", "neighbours": 0}, "neighbours", "between 1 and 100"),
    ({"kinds": ["near"], "embedding_model": "dup-model", "neighbours": 500}, "neighbours", "between 1 and 100"),
    ({"kinds": ["near"], "embedding_model": "dup-model", "neighbours": 2.5}, "neighbours", "integer"),
])
def test_bad_params_name_the_field_and_write_nothing(planted, params, field, text):
    task = dedup_task(params)
    with pytest.raises(ValidationError) as raised:
        deduplication_run(task, RecordingProgress())
    assert text in " ".join(raised.value.message_dict[field])
    assert not DuplicateGroup.objects.exists()


def test_a_model_without_vectors_is_refused():
    empty = embedding_model("empty-model")
    with pytest.raises(ValidationError) as raised:
        deduplication_params_clean({"kinds": "near", "embedding_model": empty.key})
    assert "no stored vectors" in raised.value.message_dict["embedding_model"][0]


def test_params_defaults(planted):
    model, *_ = planted
    assert deduplication_params_clean({"kinds": "exact,near", "embedding_model": model.key}) == {
        "kinds": ["exact", "near"], "embedding_model": model.key, "threshold": 0.05, "neighbours": 10}
    assert deduplication_params_clean({"kinds": ["exact"]})["embedding_model"] is None


# --- statements independent of N ---------------------------------------------------------------


def _statements_for(count: int, start_aid: int) -> tuple[int, int]:
    model = embedding_model(f"count-{count}")
    vectors, _ = planted_vectors(count // 4, 2, count - 2 * (count // 4), seed=count)
    videos = distinct_videos(count, start_aid=start_aid)
    twins = Video.objects.bulk_create(
        Video(aid=start_aid + 500_000 + i, title=v.title, description=v.description, tags=v.tags)
        for i, v in enumerate(videos[: count // 4])
    )
    embed(model, videos, vectors)
    task = dedup_task({"kinds": ["exact", "near"], "embedding_model": model.key})
    duplicates.similarity_index_ensure(model)
    with CaptureQueriesContext(connection) as captured:
        result = deduplication_run(task, RecordingProgress())
    assert result["exact"]["groups"] == len(twins) and result["near"]["groups"] == count // 4
    Video.objects.filter(aid__gte=start_aid, aid__lt=start_aid + 1_000_000).delete()
    return len(captured), result["groups"]


def test_statements_do_not_grow_with_the_corpus():
    small, small_groups = _statements_for(12, 100_000)
    large, large_groups = _statements_for(400, 200_000)
    assert large_groups > 10 * small_groups
    assert small == large


def test_exact_search_when_the_index_cannot_hold_the_model(planted, monkeypatch):
    """An old pgvector (no halfvec) and a model the index cannot hold: searched exactly, same groups."""
    model, videos, clusters, twin = planted
    exact = IndexPlan(model.pk, model.dimensions, IndexKind.EXACT, f"embedding_m{model.pk}_hnsw",
                      f"vector({model.dimensions})")
    monkeypatch.setattr(duplicates, "similarity_index_plan", lambda model, **kwargs: exact)
    task = dedup_task({"kinds": ["near"], "embedding_model": model.key})

    result = deduplication_run(task, RecordingProgress())

    assert result["near"]["index"] == "exact" and result["near"]["index_created"] is False
    assert result["near"]["groups"] == 3 and result["near"]["pairs"] == 18
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [f"embedding_m{model.pk}_hnsw"])
        assert cursor.fetchone() is None
