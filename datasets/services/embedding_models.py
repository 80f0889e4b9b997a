"""Embedding models: the registry file, its mirror in ``EmbeddingModel``, spec lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from datasets.embedding_registry import EmbeddingModelSpec, EmbeddingRegistry, load_registry
from datasets.models import Embedding, EmbeddingModel


def embedding_registry() -> EmbeddingRegistry:
    """The registry file named by ``settings.CVSA_EMBEDDING_MODELS_FILE``.

    Raises ``EmbeddingRegistryError`` when the file is missing or invalid (a server
    configuration problem, not bad user input).
    """
    return load_registry(settings.CVSA_EMBEDDING_MODELS_FILE)


_MODEL_COLUMNS = ("name", "provider_type", "dimensions", "api_endpoint", "max_tokens", "max_batch_size", "api_key_env")


def _model_values(spec: EmbeddingModelSpec) -> list[Any]:
    return [
        spec.key,
        spec.name,
        spec.type,
        spec.dimensions,
        spec.api_endpoint or "",
        spec.max_tokens,
        spec.max_batch_size,
        spec.api_key_env or "",
    ]


#: What a stored vector was made by: these never change under a key that has vectors.
_IDENTITY_COLUMNS = ("name", "provider_type", "dimensions")


def _identity(model_or_spec: EmbeddingModel | EmbeddingModelSpec) -> tuple[str, str, int]:
    if isinstance(model_or_spec, EmbeddingModel):
        return (model_or_spec.name, model_or_spec.provider_type, model_or_spec.dimensions)
    return (model_or_spec.name, model_or_spec.type, model_or_spec.dimensions)


def embedding_models_upsert(specs: Sequence[EmbeddingModelSpec]) -> dict[str, EmbeddingModel]:
    """Upsert rows for ``specs`` by key and return them, in ONE statement.

    Safe under concurrency: several processes syncing the same new key at once all get
    its row (one inserts it, the others read it back).

    Rows whose fields did not change are not rewritten (``updated_at`` means "last
    changed"); their current version comes from the second half of the UNION.

    A key's identity is (name, provider type, dimensions): once ``Embedding`` rows exist
    for it, the statement writes nothing at all (for no key: the check is part of the
    one statement) and this raises ``ValidationError`` (``embedding_model``) naming the
    change. Endpoint, batch size, max tokens and key env may change freely.
    """
    if not specs:
        return {}
    table = EmbeddingModel._meta.db_table
    embedding_table = Embedding._meta.db_table
    values_sql = ", ".join(["(%s, %s, %s, %s::integer, %s, %s::integer, %s::integer, %s)"] * len(specs))
    params: list[Any] = [value for spec in specs for value in _model_values(spec)]
    columns = ", ".join(_MODEL_COLUMNS)
    changed = " OR ".join(f"m.{column} IS DISTINCT FROM EXCLUDED.{column}" for column in _MODEL_COLUMNS)
    identity_changed = " OR ".join(f"m.{column} IS DISTINCT FROM EXCLUDED.{column}" for column in _IDENTITY_COLUMNS)
    input_identity_changed = " OR ".join(f"m.{column} IS DISTINCT FROM i.{column}" for column in _IDENTITY_COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in _MODEL_COLUMNS)
    # ``refused``: keys whose identity would change although they have vectors. If there
    # is any, the statement writes nothing at all (one statement: atomic by itself).
    sql = f"""
        WITH input (key, {columns}) AS (VALUES {values_sql}),
        refused AS (
            SELECT m.key FROM {table} m JOIN input i ON i.key = m.key
            WHERE ({input_identity_changed})
            AND EXISTS (SELECT 1 FROM {embedding_table} e WHERE e.model_id = m.id)
        ),
        upserted AS (
            INSERT INTO {table} AS m (key, {columns}, created_at, updated_at)
            SELECT key, {columns}, now(), now() FROM input WHERE NOT EXISTS (SELECT 1 FROM refused)
            ON CONFLICT (key) DO UPDATE SET {updates}, updated_at = now()
                WHERE ({changed})
                AND NOT (({identity_changed})
                         AND EXISTS (SELECT 1 FROM {embedding_table} e WHERE e.model_id = m.id))
            RETURNING m.*
        )
        SELECT * FROM upserted
        UNION ALL
        SELECT m.* FROM {table} m JOIN input USING (key) WHERE m.key NOT IN (SELECT key FROM upserted)
    """
    models = {model.key: model for model in EmbeddingModel.objects.raw(sql, params)}
    missing = [spec.key for spec in specs if spec.key not in models]
    if missing:
        # A concurrent first sync inserted these keys after this statement's snapshot: the
        # INSERT waited for it, found its row unchanged (nothing to return), and the
        # snapshot cannot see it. A new statement (READ COMMITTED) does.
        models.update((model.key, model) for model in EmbeddingModel.objects.filter(key__in=missing))
    refused = [spec for spec in specs if spec.key in models and _identity(models[spec.key]) != _identity(spec)]
    if refused:
        raise ValidationError({"embedding_model": [_identity_change_message(models[spec.key], spec) for spec in refused]})
    return models


def _identity_change_message(stored: EmbeddingModel, spec: EmbeddingModelSpec) -> str:
    was = "/".join(str(value) for value in _identity(stored))
    now = "/".join(str(value) for value in _identity(spec))
    return (
        f"embedding model {spec.key!r} already has stored vectors for name/type/dimensions {was}; "
        f"the registry now says {now}. Add the changed model under a new key"
    )


def embedding_models_sync(registry: EmbeddingRegistry | None = None) -> dict[str, EmbeddingModel]:
    """Mirror every registry entry into ``EmbeddingModel`` (upsert by key; one query).

    Rows of keys no longer in the file are kept (vectors and versions refer to them).
    Returns ``{key: EmbeddingModel}`` for the keys in the registry.
    """
    registry = registry or embedding_registry()
    return embedding_models_upsert(list(registry))


def embedding_model_spec(key: object, registry: EmbeddingRegistry | None = None) -> EmbeddingModelSpec:
    """The registry's spec for ``key``; ``ValidationError`` (``embedding_model``, listing
    the known keys) when the key is not in the registry."""
    registry = registry or embedding_registry()
    if not isinstance(key, str) or key not in registry:
        known = ", ".join(registry.models) or "none"
        raise ValidationError({"embedding_model": f"Invalid embedding model: {key!r} (known models: {known})"})
    return registry.get(key)
