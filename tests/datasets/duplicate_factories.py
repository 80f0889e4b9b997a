"""Videos with hand-chosen vectors for the duplicate tests: each video's composed text
gets the given vector under a test embedding model (as a build would have stored it)."""

from __future__ import annotations

import numpy as np

from datasets.models import DatasetTask, DatasetTaskType, Embedding, EmbeddingModel
from datasets.text_composition import compose_video_text, text_checksum
from labeling.models import Video

DIMENSIONS = 16


def embedding_model(key: str = "dup-model", dimensions: int = DIMENSIONS) -> EmbeddingModel:
    return EmbeddingModel.objects.create(
        key=key, name=key, provider_type="openai-compatible", dimensions=dimensions,
        api_endpoint="http://127.0.0.1:9/v1", max_tokens=512, max_batch_size=16,
    )


def video_checksum(video: Video) -> str:
    return text_checksum(compose_video_text(title=video.title, description=video.description, tags=video.tags))


def embed(model: EmbeddingModel, videos: list[Video], vectors) -> None:
    """Store one vector per distinct text (the first given wins, as the store does)."""
    rows, seen = [], set()
    for video, vector in zip(videos, vectors):
        checksum = video_checksum(video)
        if checksum not in seen:
            seen.add(checksum)
            rows.append(Embedding(model=model, checksum=checksum, dimensions=len(vector), vector=list(map(float, vector))))
    Embedding.objects.bulk_create(rows)


def planted_vectors(clusters: int, cluster_size: int, singles: int, *, dimensions: int = DIMENSIONS,
                    noise: float = 0.01, seed: int = 7) -> tuple[np.ndarray, list[int]]:
    """Unit vectors: ``clusters`` tight clusters of ``cluster_size`` (each a centre plus
    small noise) then ``singles`` far apart ones; the cluster index per row (-1: single)."""
    generator = np.random.default_rng(seed)
    rows, labels = [], []
    for cluster in range(clusters):
        centre = generator.standard_normal(dimensions)
        for _ in range(cluster_size):
            rows.append(centre + noise * np.linalg.norm(centre) * generator.standard_normal(dimensions))
            labels.append(cluster)
    rows.extend(generator.standard_normal(dimensions) for _ in range(singles))
    labels.extend([-1] * singles)
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def dedup_task(params: dict, user=None) -> DatasetTask:
    return DatasetTask.objects.create(type=DatasetTaskType.DEDUPLICATION, params=params, created_by=user)


def distinct_videos(count: int, *, start_aid: int = 5000) -> list[Video]:
    return Video.objects.bulk_create(
        Video(aid=start_aid + index, title=f"视频标题 {start_aid + index}", description=f"简介 {index}", tags="标签")
        for index in range(count)
    )
