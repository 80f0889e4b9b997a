"""Embed texts outside a dataset build and store their vectors in the embedding store,
so that every later reader (a build, a prediction, a scoring job) finds them by
(model, checksum) and no text is embedded twice.

A build's ``generate_embeddings`` reports into its build row; this entry point is for
callers with no build (predictions of texts nobody embedded yet): the same provider
(``provider_for``) and the same storage (``embedding_store._embeddings_store``: binary
COPY into the session's stage table, one upsert, rows of a concurrent writer kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from datasets.embedding_providers import provider_for
from datasets.models import EmbeddingModel
from datasets.services import embedding_store
from datasets.services.embedding_models import embedding_model_spec
from datasets.services.job_lifecycle import BuildFailed


@dataclass(frozen=True)
class StoredTexts:
    """``ids``: checksum -> ``Embedding.id`` for every text asked for; ``embedded``: how
    many of them this call sent to the provider (the others were stored already)."""

    ids: dict[str, int]
    embedded: int


def texts_embed_and_store(
    model: EmbeddingModel, texts: dict[str, str], *, on_chunk: Callable[[int, int], None] | None = None
) -> StoredTexts:
    """Store a vector of ``model`` for every ``checksum: text`` of ``texts`` that has
    none yet, embedding only those, in chunks (one provider call, one COPY and one
    upsert per chunk); ``on_chunk(embedded, to_embed)`` after each stored chunk (a
    caller's heartbeat). Raises ``ValidationError`` (``embedding_model``) when the model
    is not in the registry any more or its vectors would not have the model's
    dimensions, and the provider's ``EmbeddingProviderError`` when embedding fails
    (chunks stored before stay stored)."""
    found = embedding_store.existing_embeddings(model.pk, model.dimensions, list(texts))
    missing = sorted(checksum for checksum in texts if checksum not in found)
    if not missing:
        return StoredTexts(ids=found, embedded=0)
    spec = embedding_model_spec(model.key)
    if spec.dimensions != model.dimensions:
        raise ValidationError({"embedding_model": f"embedding model {model.key!r} now has {spec.dimensions} "
                                                  f"dimensions in the registry, not {model.dimensions}"})
    size = embedding_store.LOCAL_EMBED_CHUNK_TEXTS if spec.type == "local" else embedding_store.EMBED_CHUNK_TEXTS
    embedding_store._stage_prepare()
    provider = provider_for(spec)
    try:
        for start in range(0, len(missing), size):
            chunk = missing[start:start + size]
            vectors = provider.embed([texts[checksum] for checksum in chunk])
            outcome = embedding_store._embeddings_store(model.pk, chunk, vectors, overwrite=False)
            found.update(outcome.ids)
            if on_chunk is not None:
                on_chunk(start + len(chunk), len(missing))
    except BuildFailed as error:
        raise ValidationError({"embedding_model": str(error)}) from None
    finally:
        provider.close()
    return StoredTexts(ids=found, embedded=len(missing))
