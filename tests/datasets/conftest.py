"""Fixtures for the dataset-build tests (none autouse: the provider tests share this folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openai_embedding_server import OpenAIEmbeddingServer

EMBEDDING_KEY_ENV = "CVSA_TEST_DATASET_EMBED_KEY"
EMBEDDING_API_KEY = "sk-dataset-tests"
DIMENSIONS = 8
MODEL_KEY = "fake-remote"


def registry_toml(server: OpenAIEmbeddingServer, *, dimensions: int = DIMENSIONS, max_batch_size: int = 16,
                  concurrency: int = 4, extra_models: str = "") -> str:
    return f"""
model = "{MODEL_KEY}"

[models.{MODEL_KEY}]
name = "fake-embedding-model"
dimensions = {dimensions}
type = "openai-compatible"
api_endpoint = "{server.base_url}"
max_tokens = 512
max_batch_size = {max_batch_size}
api_key_env = "{EMBEDDING_KEY_ENV}"
concurrency = {concurrency}
max_retries = 0
timeout_seconds = 5
{extra_models}
"""


@pytest.fixture
def embedding_server() -> Iterator[OpenAIEmbeddingServer]:
    with OpenAIEmbeddingServer(dimensions=DIMENSIONS, api_key=EMBEDDING_API_KEY) as server:
        yield server


@pytest.fixture
def registry_file(tmp_path: Path, settings, monkeypatch, embedding_server) -> Path:
    monkeypatch.setenv(EMBEDDING_KEY_ENV, EMBEDDING_API_KEY)
    path = tmp_path / "embedding_models.toml"
    path.write_text(registry_toml(embedding_server), encoding="utf-8")
    settings.CVSA_EMBEDDING_MODELS_FILE = path
    return path


@pytest.fixture
def celery_eager() -> Iterator[None]:
    from cvsa_ml.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = previous
