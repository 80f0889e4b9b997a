"""Builders for the prediction tests.

``separable_dataset_version`` stores its vectors under salted checksums (no text made
them); a prediction finds a video's vector by the checksum of the video's composed
text. ``embeddings_keyed_by_text`` re-keys a version's embeddings so that each video's
text finds the vector the version was trained on, as after a real build.

``fake_remote_model`` is an 8-dimension openai-compatible model of a registry file
served by the fake OpenAI server (``tests.support.openai_embedding_server``): texts
nobody embedded yet are embedded there, and the server records every text sent.
"""

from __future__ import annotations

from pathlib import Path

from datasets.models import DatasetVersion, DatasetVersionItem, Embedding, EmbeddingModel
from datasets.services import embedding_models_sync
from datasets.text_composition import compose_video_text, text_checksum
from tests.support.openai_embedding_server import OpenAIEmbeddingServer
from training.models import ModelVersion

FAKE_MODEL_KEY = "fake-remote-8d"
FAKE_KEY_ENV = "CVSA_TEST_PREDICT_EMBED_KEY"
FAKE_API_KEY = "sk-predict-tests"
DIMENSIONS = 8


def embeddings_keyed_by_text(dataset_version: DatasetVersion) -> None:
    """Give each item's embedding the checksum of its video's composed text."""
    items = DatasetVersionItem.objects.filter(version=dataset_version).select_related("video", "embedding")
    embeddings = []
    for item in items:
        video = item.video
        item.embedding.checksum = text_checksum(
            compose_video_text(title=video.title, description=video.description, tags=video.tags)
        )
        embeddings.append(item.embedding)
    Embedding.objects.bulk_update(embeddings, ["checksum"])


def registry_toml(server: OpenAIEmbeddingServer) -> str:
    return f"""
model = "{FAKE_MODEL_KEY}"

[models.{FAKE_MODEL_KEY}]
name = "fake-embedding-model"
dimensions = {DIMENSIONS}
type = "openai-compatible"
api_endpoint = "{server.base_url}"
max_tokens = 512
max_batch_size = 16
api_key_env = "{FAKE_KEY_ENV}"
concurrency = 2
max_retries = 0
timeout_seconds = 5
"""


def fake_remote_model(server: OpenAIEmbeddingServer, folder: Path, settings, monkeypatch) -> EmbeddingModel:
    """The registry file's model served by ``server`` (its ``EmbeddingModel`` row)."""
    monkeypatch.setenv(FAKE_KEY_ENV, FAKE_API_KEY)
    path = folder / "embedding_models.toml"
    path.write_text(registry_toml(server), encoding="utf-8")
    settings.CVSA_EMBEDDING_MODELS_FILE = path
    return embedding_models_sync()[FAKE_MODEL_KEY]


def served_by(version: ModelVersion, embedding_model: EmbeddingModel) -> ModelVersion:
    """``version`` with its inputs coming from ``embedding_model`` (of the same dimensions)."""
    ModelVersion.objects.filter(pk=version.pk).update(embedding_model=embedding_model)
    version.refresh_from_db()
    return version
