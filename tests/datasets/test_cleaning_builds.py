"""Dataset builds skip actively excluded videos by default, count them, and keep them
when asked ``include_excluded``; a reverted exclusion no longer applies."""

from __future__ import annotations

import pytest

from datasets import services
from datasets.models import DatasetTaskStatus, DatasetVersionItem
from datasets.services.cleaning import cleaning_run, exclusions_revert
from tests.datasets.conftest import MODEL_KEY
from tests.datasets.factories import POSITIVE, label, make_labelers, make_videos

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(db):
    labelers = make_labelers(1)
    videos = make_videos(12, start_aid=1000)
    short = make_videos(3, start_aid=2000, title=lambda index: "歌")
    label(videos + short, labelers, POSITIVE)
    return videos + short


def build(capture, **kwargs):
    with capture(execute=True):
        task = services.dataset_build_request(services.BuildRequest(
            embedding_model_key=MODEL_KEY, aid_list=[v.aid for v in kwargs.pop("videos")], **kwargs)).task
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    return task.dataset_version


def member_aids(version) -> set[int]:
    return set(DatasetVersionItem.objects.filter(version=version).values_list("video__aid", flat=True))


def test_builds_honour_exclusions_unless_asked(labeled, registry_file, celery_eager,
                                               django_capture_on_commit_callbacks):
    task = cleaning_run("short_title", {"min_length": 2})
    assert task.result["excluded"] == 3

    respected = build(django_capture_on_commit_callbacks, videos=labeled)
    assert member_aids(respected) == {v.aid for v in labeled[:12]}
    assert respected.cleaning_excluded == 3 and respected.total_records == 12
    assert respected.include_excluded is False

    ignored = build(django_capture_on_commit_callbacks, videos=labeled, include_excluded=True)
    assert member_aids(ignored) == {v.aid for v in labeled}
    assert ignored.cleaning_excluded == 0 and ignored.include_excluded is True

    exclusions_revert(task_id=str(task.pk))
    after_revert = build(django_capture_on_commit_callbacks, videos=labeled)
    assert after_revert.cleaning_excluded == 0 and after_revert.total_records == 15


def sampled_build(capture, **kwargs):
    with capture(execute=True):
        task = services.dataset_build_request(services.BuildRequest(
            embedding_model_key=MODEL_KEY,
            sampling=services.SamplingRequest(strategy="random", limit=12, seed=3), **kwargs)).task
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    return task.dataset_version


def test_a_sampling_build_samples_among_the_videos_it_keeps(labeled, registry_file, celery_eager,
                                                           django_capture_on_commit_callbacks):
    cleaning_run("short_title", {"min_length": 2})  # excludes the three one-character titles

    respected = sampled_build(django_capture_on_commit_callbacks)
    assert member_aids(respected) == {v.aid for v in labeled[:12]}  # all 12 asked for, none excluded
    assert respected.cleaning_excluded == 0 and respected.total_records == 12

    ignored = sampled_build(django_capture_on_commit_callbacks, include_excluded=True)
    assert ignored.total_records == 12 and member_aids(ignored) & {v.aid for v in labeled[12:]}
