"""What every embedding provider promises, and the checks they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from types import TracebackType

import numpy as np

from datasets.embedding_registry import EmbeddingModelSpec


#: ``on_batch(texts_in_the_batch)``: see ``EmbeddingProvider.embed``.
BatchCallback = Callable[[int], None]


class EmbeddingProviderError(RuntimeError):
    """Embedding failed for good: retries (if any) are exhausted or pointless.

    The message names the model, what failed and after how many attempts; it never
    contains the API key.
    """

    def __init__(self, message: str, *, model_key: str, attempts: int | None = None) -> None:
        super().__init__(message)
        self.model_key = model_key
        self.attempts = attempts


class EmbeddingProvider(ABC):
    """Turns texts into a float32 matrix of shape (len(texts), spec.dimensions).

    Row i is the vector of texts[i]. Either every text is embedded or
    EmbeddingProviderError is raised; callers that want to keep partial progress
    call `embed` per chunk and store each chunk before the next.
    """

    def __init__(self, spec: EmbeddingModelSpec) -> None:
        self.spec = spec

    def embed(self, texts: Sequence[str], on_batch: BatchCallback | None = None) -> np.ndarray:
        """``on_batch(n)`` is called each time a batch of ``n`` texts has been embedded,
        from whichever thread embedded it (a provider's pool thread): it must be quick and
        thread-safe (bump a counter), never touch the database. The batches' counts add
        up to ``len(texts)`` when the call succeeds.
        """
        texts = list(texts)
        _check_texts(texts)
        if not texts:
            return np.empty((0, self.spec.dimensions), dtype=np.float32)
        vectors = self._embed(texts, on_batch or _ignore_batch)
        check_vectors(self.spec, vectors, expected_rows=len(texts))
        return vectors

    @abstractmethod
    def _embed(self, texts: list[str], on_batch: BatchCallback) -> np.ndarray:
        """Embed a non-empty list of non-empty strings, calling ``on_batch`` after each batch."""

    def cancel(self) -> None:
        """Stop the work of calls in progress that has not started yet (queued batches,
        retries); requests already sent finish. The provider must not be used afterwards."""

    def close(self) -> None:
        """Release connections; the provider must not be used afterwards."""

    def __enter__(self) -> EmbeddingProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _ignore_batch(texts_in_the_batch: int) -> None:
    pass


def split_into_batches(texts: Sequence[str], batch_size: int) -> list[tuple[int, list[str]]]:
    """(offset of the first text, texts) for consecutive batches of at most batch_size."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive (got {batch_size})")
    return [
        (start, list(texts[start : start + batch_size])) for start in range(0, len(texts), batch_size)
    ]


def check_vectors(spec: EmbeddingModelSpec, vectors: np.ndarray, *, expected_rows: int) -> None:
    """Reject output that would silently corrupt stored embeddings."""
    if vectors.ndim != 2 or vectors.shape[0] != expected_rows:
        raise EmbeddingProviderError(
            f"embedding model {spec.key!r} returned an array of shape {vectors.shape} "
            f"for {expected_rows} texts",
            model_key=spec.key,
        )
    if vectors.shape[1] != spec.dimensions:
        raise EmbeddingProviderError(wrong_dimensions_message(spec, vectors.shape[1]), model_key=spec.key)
    if not np.isfinite(vectors).all():
        raise EmbeddingProviderError(
            f"embedding model {spec.key!r} returned vectors containing NaN or infinity",
            model_key=spec.key,
        )


def wrong_dimensions_message(spec: EmbeddingModelSpec, got: int) -> str:
    return (
        f"embedding model {spec.key!r} ({spec.name}) returned {got}-dimensional vectors, "
        f"but models.{spec.key}.dimensions is {spec.dimensions}; fix the registry entry "
        f"or the provider's model settings"
    )


def _check_texts(texts: list[str]) -> None:
    # Providers reject empty input with an opaque 400 that would fail a whole batch;
    # an empty composed text means "nothing to embed" and must be skipped upstream.
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] must be a str (got {type(text).__name__})")
        if not text.strip():
            raise ValueError(f"texts[{position}] is empty; skip videos without text before embedding")
