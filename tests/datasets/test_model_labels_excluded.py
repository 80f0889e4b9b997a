"""Issue 10 item 11: a model's labels never decide a dataset's labels.

Builds read the consensus view (``datasets.services.build`` and the sampling selector
join ``labeling_videoconsensus``), so a ``source=model`` label must change neither which
videos are eligible nor the label a version freezes.
"""

from __future__ import annotations

import pytest

from datasets import services
from datasets.models import DatasetTaskStatus, DatasetVersionItem
from datasets.selectors import dataset_version_arrays, sampling_select
from labeling.models import Label, LabelSource
from tests.datasets.conftest import MODEL_KEY
from tests.datasets.factories import NEGATIVE, POSITIVE, TIE, UNLABELED, label, make_labelers, make_videos

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(db):
    """Human votes, then a model that answers the opposite of every human on every video.

    positive: 4 videos with one human yes; negative: 3 with one human no; tied: 2 with a
    human yes and no; unlabeled: 2 with no human label at all.
    """
    humans = make_labelers(2)
    (model,) = make_labelers(1, prefix="scorer")
    positive = make_videos(4, start_aid=1000)
    negative = make_videos(3, start_aid=2000)
    tied = make_videos(2, start_aid=3000)
    unlabeled = make_videos(2, start_aid=4000)
    label(positive, humans, POSITIVE)
    label(negative, humans, NEGATIVE)
    label(tied, humans, TIE)
    label(unlabeled, humans, UNLABELED)
    opposite = [(video, False) for video in positive] + [(video, True) for video in negative + unlabeled]
    # Several model labels per video and one under a human's account: none may vote.
    Label.objects.bulk_create(
        [Label(video=video, user=user, value=value, source=LabelSource.MODEL)
         for video, value in opposite for user in (model, model, humans[0])]
        + [Label(video=video, user=model, value=True, source=LabelSource.MODEL) for video in tied]
    )
    return {"positive": positive, "negative": negative, "tied": tied, "unlabeled": unlabeled}


def aids(videos) -> list[int]:
    return sorted(video.aid for video in videos)


def test_sampling_sees_only_human_consensus(corpus):
    result = sampling_select(strategy="all")

    assert result.aid_list == aids(corpus["positive"] + corpus["negative"])
    assert (result.sampling_info["positives"], result.sampling_info["negatives"]) == (4, 3)


def test_a_build_freezes_the_human_labels(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    every = corpus["positive"] + corpus["negative"] + corpus["tied"] + corpus["unlabeled"]
    with django_capture_on_commit_callbacks(execute=True):
        task = services.dataset_build_request(
            services.BuildRequest(aid_list=aids(every), embedding_model_key=MODEL_KEY, include_inconsistent=True)
        ).task
    task.refresh_from_db()

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    version = task.dataset_version
    assert (version.total_records, version.positives, version.negatives) == (7, 4, 3)
    assert version.unlabeled_excluded == 2  # the model's answers did not label them
    assert version.inconsistent_excluded == 2  # ties stay ties: the model broke none
    frozen = dict(DatasetVersionItem.objects.filter(version=version).values_list("video__aid", "label"))
    assert frozen == {**dict.fromkeys(aids(corpus["positive"]), True), **dict.fromkeys(aids(corpus["negative"]), False)}
    arrays = dataset_version_arrays(version.pk)
    assert sorted(zip(arrays.aids.tolist(), arrays.y.tolist())) == sorted(
        (aid, 1 if value else 0) for aid, value in frozen.items()
    )


def test_a_request_for_videos_only_a_model_labeled_is_refused(corpus, registry_file):
    from django.core.exceptions import ValidationError

    from datasets.models import DatasetVersion

    with pytest.raises(ValidationError, match="none of the 2 video"):
        services.dataset_build_request(services.BuildRequest(aid_list=aids(corpus["unlabeled"]), embedding_model_key=MODEL_KEY))
    assert not DatasetVersion.objects.exists()
