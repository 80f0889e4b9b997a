"""A ready version whose members have real texts (Chinese, tags), for the augmentation tests.

Written straight into the tables (videos, their composed texts' vectors under the test
registry's ``fake-remote`` model, a frozen version, its items): one bulk insert each.
Splits go by position (60/20/20), so every split holds members.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import numpy as np
from django.db.models import Max
from django.utils import timezone

from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetTaskType,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
    EmbeddingModel,
    Split,
)
from datasets.text_composition import TEXT_TEMPLATE_VERSION, compose_video_text, text_checksum
from labeling.models import Video
from tests.datasets.conftest import DIMENSIONS, MODEL_KEY


def fake_remote_model() -> EmbeddingModel:
    model, _ = EmbeddingModel.objects.get_or_create(
        key=MODEL_KEY,
        defaults={"name": "fake-embedding-model", "provider_type": "openai-compatible", "dimensions": DIMENSIONS,
                  "max_tokens": 512, "max_batch_size": 16},
    )
    return model


def split_of(index: int, rows: int) -> str:
    if index < round(rows * 0.6):
        return Split.TRAIN
    return Split.VAL if index < round(rows * 0.8) else Split.TEST


def text_version(rows: int = 10, *, titles=None, descriptions=None, tags=None,
                 status: str = DatasetVersionStatus.READY) -> DatasetVersion:
    """A ready version of ``rows`` videos with titles, descriptions and two or more tags
    each (override per index with the callables), labels alternating."""
    model = fake_remote_model()
    dataset, _ = Dataset.objects.get_or_create(name="augmentation-tests")
    first_aid = (Video.objects.aggregate(largest=Max("aid"))["largest"] or 0) + 1
    salt = uuid.uuid4().hex[:6]
    videos = Video.objects.bulk_create([
        Video(
            aid=first_aid + index,
            title=titles(index) if titles else f"【初音ミク】测试视频 {salt} 第{index}期",
            description=descriptions(index) if descriptions else f"这是第{index}个视频的简介，欢迎观看 {salt}",
            tags=tags(index) if tags else f"VOCALOID,初音ミク,翻唱{index}",
            published_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for index in range(rows)
    ])
    texts = [compose_video_text(title=video.title, description=video.description, tags=video.tags)
             for video in videos]
    generator = np.random.default_rng(rows)
    checksums = [text_checksum(text) for text in texts]
    stored = {embedding.checksum: embedding for embedding in Embedding.objects.bulk_create([
        Embedding(model=model, checksum=checksum, dimensions=DIMENSIONS,
                  vector=generator.normal(size=DIMENSIONS).astype(np.float32))
        for checksum in dict.fromkeys(checksums)  # one vector per distinct text, as the store keeps them
    ])}
    embeddings = [stored[checksum] for checksum in checksums]
    labels = [index % 2 == 0 for index in range(rows)]
    splits = [split_of(index, rows) for index in range(rows)]
    counts = {split: {"total": 0, "positives": 0, "negatives": 0} for split in Split.values}
    for label, split in zip(labels, splits):
        counts[split]["total"] += 1
        counts[split]["positives" if label else "negatives"] += 1
    positives = sum(labels)
    version = DatasetVersion.objects.create(
        dataset=dataset, number=(dataset.versions.aggregate(last=Max("number"))["last"] or 0) + 1,
        embedding_model=model, embedding_dimensions=DIMENSIONS, text_template_version=TEXT_TEMPLATE_VERSION,
        train_ratio=0.6, val_ratio=0.2, test_ratio=0.2, seed=0, status=status,
        frozen_at=timezone.now(), content_hash=hashlib.sha256(salt.encode()).hexdigest(),
        total_records=rows, positives=positives, negatives=rows - positives,
        train_count=counts["train"]["total"], val_count=counts["val"]["total"], test_count=counts["test"]["total"],
        split_counts=counts,
    )
    DatasetVersionItem.objects.bulk_create([
        DatasetVersionItem(version=version, video=video, embedding=embedding, label=label, split=split)
        for video, embedding, label, split in zip(videos, embeddings, labels, splits)
    ])
    return version


def augmentation_task(version: DatasetVersion, params: dict) -> DatasetTask:
    return DatasetTask.objects.create(type=DatasetTaskType.AUGMENTATION, dataset_version=version, params=params)
