"""Builders for the training tests: a small ready dataset version with real vectors.

``separable_dataset_version`` writes what a finished build leaves behind (videos,
embeddings, a frozen version and its items) straight into the tables with one bulk
insert per table, so a test gets a trainable version in a few queries, without an
embedding server or a build task. Vectors are random but deterministic (``seed``) and
linearly separable: positives lie around ``+separation`` along one direction and
negatives around ``-separation``, so any trained classifier scores well above chance.
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
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
    EmbeddingModel,
    Split,
)
from labeling.models import Video

#: train / val / test shares, applied within each class so every split holds both.
SPLIT_RATIOS = (0.6, 0.2, 0.2)
TEXT_TEMPLATE_VERSION = "v1"


def _split_of(position: int, class_size: int) -> str:
    train_rows = round(class_size * SPLIT_RATIOS[0])
    val_rows = round(class_size * SPLIT_RATIOS[1])
    if position < train_rows:
        return Split.TRAIN
    return Split.VAL if position < train_rows + val_rows else Split.TEST


def _embedding_model(dimensions: int) -> EmbeddingModel:
    model, _ = EmbeddingModel.objects.get_or_create(
        key=f"training-test-{dimensions}d",
        defaults={"name": "random vectors", "provider_type": "local", "dimensions": dimensions,
                  "max_tokens": 512, "max_batch_size": 64},
    )
    return model


def separable_vectors(rows: int, dimensions: int, *, seed: int = 0, positive_share: float = 0.5,
                      separation: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (rows, dimensions), y bool (rows,)): two Gaussian clouds, unit noise,
    ``2 * separation`` apart along a random unit direction."""
    generator = np.random.default_rng(seed)
    labels = np.zeros(rows, dtype=bool)
    labels[: round(rows * positive_share)] = True
    generator.shuffle(labels)
    direction = generator.normal(size=dimensions)
    direction /= np.linalg.norm(direction)
    centres = np.where(labels[:, None], separation, -separation) * direction
    vectors = centres + generator.normal(size=(rows, dimensions))
    return vectors.astype(np.float32), labels


def separable_dataset_version(*, rows: int = 60, dimensions: int = 8, seed: int = 0, positive_share: float = 0.5,
                              separation: float = 3.0, name: str = "training-tests") -> DatasetVersion:
    """A ready (frozen) dataset version of ``rows`` members with separable vectors.

    Each class is split 60/20/20 into train/val/test by position, so with ``rows`` of 10
    or more every split holds both classes. Aids continue after the largest one stored,
    so several versions can coexist in one test. A fixed number of queries whatever ``rows``.
    """
    if rows < 10:
        raise ValueError("rows must be at least 10 so that every split holds both classes")
    vectors, labels = separable_vectors(rows, dimensions, seed=seed, positive_share=positive_share,
                                        separation=separation)
    model = _embedding_model(dimensions)
    dataset, _ = Dataset.objects.get_or_create(name=name)
    first_aid = (Video.objects.aggregate(largest=Max("aid"))["largest"] or 0) + 1
    published = datetime(2024, 1, 1, tzinfo=UTC)
    videos = Video.objects.bulk_create([
        Video(aid=first_aid + index, title=f"video {first_aid + index}", published_at=published)
        for index in range(rows)
    ])
    # A fresh salt per version: (model, checksum) is unique, and texts are never shared here.
    salt = uuid.uuid4().hex
    checksums = [hashlib.sha256(f"{salt}:{index}".encode()).hexdigest() for index in range(rows)]
    embeddings = Embedding.objects.bulk_create([
        Embedding(model=model, checksum=checksum, dimensions=dimensions, vector=vector)
        for checksum, vector in zip(checksums, vectors)
    ])

    splits: list[str] = [""] * rows
    for label in (True, False):
        members = np.flatnonzero(labels == label)
        for position, index in enumerate(members):
            splits[index] = _split_of(position, len(members))
    split_counts = {split: {"total": 0, "positives": 0, "negatives": 0} for split in Split.values}
    for label, split in zip(labels, splits):
        split_counts[split]["total"] += 1
        split_counts[split]["positives" if label else "negatives"] += 1

    digest = hashlib.sha256(f"{model.key}\t{dimensions}\t{TEXT_TEMPLATE_VERSION}\n".encode())
    for index in range(rows):
        digest.update(f"{first_aid + index}\t{checksums[index]}\t{int(labels[index])}\t{splits[index]}\n".encode())
    positives = int(labels.sum())
    version = DatasetVersion.objects.create(
        dataset=dataset, number=(dataset.versions.aggregate(last=Max("number"))["last"] or 0) + 1,
        embedding_model=model, embedding_dimensions=dimensions, text_template_version=TEXT_TEMPLATE_VERSION,
        train_ratio=SPLIT_RATIOS[0], val_ratio=SPLIT_RATIOS[1], test_ratio=SPLIT_RATIOS[2], seed=seed,
        status=DatasetVersionStatus.READY, frozen_at=timezone.now(), content_hash=digest.hexdigest(),
        selection={"strategy": "separable random vectors", "seed": seed},
        total_records=rows, positives=positives, negatives=rows - positives,
        train_count=split_counts[Split.TRAIN]["total"], val_count=split_counts[Split.VAL]["total"],
        test_count=split_counts[Split.TEST]["total"], split_counts=split_counts,
    )
    DatasetVersionItem.objects.bulk_create([
        DatasetVersionItem(version=version, video=video, embedding=embedding, label=bool(label), split=split)
        for video, embedding, label, split in zip(videos, embeddings, labels, splits)
    ])
    return version
