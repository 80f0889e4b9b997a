"""The per-model similarity index: planned by dimension and pgvector version, created
once, and used by the near-duplicate KNN query (EXPLAIN names it)."""

from __future__ import annotations

import pytest
from django.db import connection

from datasets.models import Embedding
from datasets.services.duplicates import _knn_sql
from datasets.similarity_index import (
    IndexKind,
    pgvector_version,
    similarity_index_ensure,
    similarity_index_exists,
    similarity_index_plan,
)
from tests.datasets.duplicate_factories import distinct_videos, embed, embedding_model, planted_vectors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("dimensions", "version", "kind", "cast"), [
    (384, (0, 8, 0), IndexKind.VECTOR, "vector(384)"),
    (2000, (0, 5, 1), IndexKind.VECTOR, "vector(2000)"),
    (2001, (0, 7, 0), IndexKind.HALFVEC, "halfvec(2001)"),
    (3072, (0, 8, 5), IndexKind.HALFVEC, "halfvec(3072)"),
    (3072, (0, 6, 2), IndexKind.EXACT, "vector(3072)"),  # halfvec needs pgvector >= 0.7
    (4000, (0, 7, 4), IndexKind.HALFVEC, "halfvec(4000)"),
    (4001, (0, 8, 0), IndexKind.EXACT, "vector(4001)"),
])
def test_plan_by_dimension_and_pgvector_version(dimensions, version, kind, cast):
    model = embedding_model(f"m{dimensions}", dimensions=dimensions)
    plan = similarity_index_plan(model, version=version)
    assert (plan.kind, plan.cast_type) == (kind, cast)
    assert plan.index_name == f"embedding_m{model.pk}_hnsw"
    assert plan.distance_sql("e.vector", "%s") == f"(e.vector::{cast}) <=> (%s::{cast})"


def test_the_server_version_is_read_from_pg_extension():
    version = pgvector_version()
    assert version is not None and version >= (0, 5)
    model = embedding_model("big", dimensions=3072)
    expected = IndexKind.HALFVEC if version >= (0, 7) else IndexKind.EXACT
    assert similarity_index_plan(model).kind == expected


def test_exact_plans_create_no_index():
    model = embedding_model("huge", dimensions=4096)
    assert similarity_index_ensure(model) is False
    assert not similarity_index_exists(similarity_index_plan(model))


def _index_definition(name: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        row = cursor.fetchone()
    return row[0] if row else None


def test_index_is_created_once_as_a_partial_expression_index():
    model = embedding_model()
    plan = similarity_index_plan(model)
    assert _index_definition(plan.index_name) is None
    assert similarity_index_ensure(model) is True
    assert similarity_index_ensure(model) is False
    definition = _index_definition(plan.index_name)
    assert "USING hnsw" in definition and "vector(16)" in definition and "vector_cosine_ops" in definition
    assert f"WHERE (model_id = {model.pk})" in definition


def test_halfvec_index_for_a_large_model():
    if (pgvector_version() or (0,)) < (0, 7):
        pytest.skip("the server's pgvector has no halfvec")
    model = embedding_model("large", dimensions=3000)
    assert similarity_index_ensure(model) is True
    definition = _index_definition(similarity_index_plan(model).index_name)
    assert "halfvec(3000)" in definition and "halfvec_cosine_ops" in definition


def test_the_knn_query_uses_the_index():
    model = embedding_model()
    other = embedding_model("other-model")
    vectors, _ = planted_vectors(5, 2, 90)
    embed(model, distinct_videos(100), vectors)
    embed(other, distinct_videos(20, start_aid=90_000), vectors[:20])
    similarity_index_ensure(model)
    plan = similarity_index_plan(model)
    ids = list(Embedding.objects.filter(model=model).values_list("id", flat=True)[:10])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE datasets_embedding")
        # A 100-row table is cheaper to sort than to probe: make the planner show what it
        # does on a large one (where the sort per query vector would cost N rows).
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + _knn_sql(plan, 10), [ids, 0.05])
        explained = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {plan.index_name}" in explained, explained
