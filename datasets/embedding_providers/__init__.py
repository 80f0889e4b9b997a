"""Embedding providers: one per registry `type`, all with `embed(texts, on_batch=None) -> ndarray`."""

from __future__ import annotations

from datasets.embedding_registry import EmbeddingModelSpec

from .base import BatchCallback, EmbeddingProvider, EmbeddingProviderError
from .local import LocalE5Provider
from .openai_compatible import DEFAULT_BACKOFF_BASE_SECONDS, OpenAICompatibleProvider
from .rate_limit import SYSTEM_CLOCK, Clock

__all__ = [
    "BatchCallback",
    "Clock",
    "EmbeddingProvider",
    "EmbeddingProviderError",
    "LocalE5Provider",
    "OpenAICompatibleProvider",
    "provider_for",
]


def provider_for(
    spec: EmbeddingModelSpec,
    *,
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS,
    clock: Clock = SYSTEM_CLOCK,
) -> EmbeddingProvider:
    """The provider for a registry entry; `backoff_base_seconds` and `clock` (pacing,
    backoff) apply to remote ones."""
    if spec.type == "local":
        return LocalE5Provider(spec)
    if spec.type == "openai-compatible":
        return OpenAICompatibleProvider(spec, backoff_base_seconds=backoff_base_seconds, clock=clock)
    raise ValueError(f"model {spec.key!r}: no provider for type {spec.type!r}")
