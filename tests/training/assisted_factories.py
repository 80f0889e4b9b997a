"""Builders for the model-assisted labeling tests: a model version straight into the
tables (the queues need no weights: they read predictions) and its predictions, with
hand-made vectors when a test needs distances, in one bulk insert per table."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from datasets.models import Embedding, EmbeddingModel
from labeling.models import Label, LabelSource, Review, Video
from tests.experiments.factories import RunFactory
from training.models import ModelStage, ModelVersion, Prediction, RegisteredModel


def embedding_model(dimensions: int = 3) -> EmbeddingModel:
    model, _ = EmbeddingModel.objects.get_or_create(
        key=f"assisted-test-{dimensions}d",
        defaults={"name": "hand-made vectors", "provider_type": "local", "dimensions": dimensions,
                  "max_tokens": 512, "max_batch_size": 64},
    )
    return model


def model_version(model_name: str = "m", *, stage: str = ModelStage.PRODUCTION, threshold: float = 0.5,
                  dimensions: int = 3, number: int | None = None) -> ModelVersion:
    """A version of ``model_name`` (created when missing) in ``stage``, written directly."""
    model, _ = RegisteredModel.objects.get_or_create(name=model_name)
    number = number or model.versions.count() + 1
    return ModelVersion.objects.create(
        registered_model=model, number=number, run=RunFactory(), embedding_model=embedding_model(dimensions),
        input_dimensions=dimensions, threshold=threshold, architecture_key="mlp", weights_sha256="0" * 64,
        stage=stage,
    )


def make_videos(count: int, *, first_aid: int = 1) -> list[Video]:
    return Video.objects.bulk_create(
        [Video(aid=first_aid + index, title=f"【测试】video {first_aid + index}", tags="VOCALOID")
         for index in range(count)]
    )


def score(version: ModelVersion, videos: Sequence[Video], probabilities: Sequence[float],
          vectors: Sequence[Sequence[float]] | None = None) -> list[Prediction]:
    """The version's predictions of ``videos`` (margin = |p − threshold|), each with its
    vector stored as an embedding of the version's embedding model when ``vectors`` is given."""
    embeddings: list[Embedding | None] = [None] * len(videos)
    if vectors is not None:
        salt = uuid.uuid4().hex
        embeddings = Embedding.objects.bulk_create([
            Embedding(model=version.embedding_model, dimensions=len(vector), vector=list(vector),
                      checksum=hashlib.sha256(f"{salt}:{index}".encode()).hexdigest())
            for index, vector in enumerate(vectors)
        ])
    return Prediction.objects.bulk_create([
        Prediction(model_version=version, video=video, probability=probability,
                   margin=abs(probability - version.threshold), embedding=embedding)
        for video, probability, embedding in zip(videos, probabilities, embeddings, strict=True)
    ])


def vote(video: Video, user, value: bool, *, source: str = LabelSource.HUMAN) -> Label:
    return Label.objects.create(video=video, user=user, value=value, source=source)


def review(video: Video, reviewer, value: bool) -> Review:
    return Review.objects.create(video=video, reviewer=reviewer, value=value)
