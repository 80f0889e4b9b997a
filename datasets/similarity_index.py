"""The per-model similarity (HNSW) index on ``datasets_embedding``, created by the app.

Every model's vectors share one untyped ``vector`` column, so an index is a PARTIAL
EXPRESSION index per model: the column cast to the model's fixed type, restricted to
the model's rows::

    CREATE INDEX embedding_m3_hnsw ON datasets_embedding
    USING hnsw ((vector::vector(384)) vector_cosine_ops) WHERE model_id = 3;

pgvector indexes ``vector`` up to 2,000 dimensions and ``halfvec`` (from 0.7) up to
4,000; a larger model (or an older server) is searched exactly, without an index. The
planner only uses the index when a query repeats the cast AND the predicate, so the
queries build both from the plan (``IndexPlan.distance_sql`` / ``model_predicate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from datasets.models import Embedding, EmbeddingModel

MAX_VECTOR_INDEX_DIMENSIONS = 2000
MAX_HALFVEC_INDEX_DIMENSIONS = 4000
HALFVEC_MIN_PGVECTOR = (0, 7)
#: maintenance_work_mem for the build: pgvector builds the graph in memory and slows
#: down several-fold once it no longer fits (100k x 384-d needs about 200 MB).
INDEX_BUILD_MEMORY = "512MB"


class IndexKind:
    VECTOR = "vector"
    HALFVEC = "halfvec"
    EXACT = "exact"


@dataclass(frozen=True)
class IndexPlan:
    """How a model's vectors are indexed and how a query must be written to use it."""

    model_id: int
    dimensions: int
    kind: str  # IndexKind
    index_name: str
    cast_type: str  # "vector(384)" / "halfvec(3072)"; the type both sides are cast to

    @property
    def uses_index(self) -> bool:
        return self.kind != IndexKind.EXACT

    @property
    def opclass(self) -> str:
        return "halfvec_cosine_ops" if self.kind == IndexKind.HALFVEC else "vector_cosine_ops"

    def cast_sql(self, column: str = "vector") -> str:
        """The indexed expression (for a table alias: ``cast_sql("e.vector")``)."""
        return f"({column}::{self.cast_type})"

    def distance_sql(self, column: str, other: str) -> str:
        """Cosine distance between ``column`` (the indexed side) and ``other`` (an SQL
        expression of an untyped vector), both cast the way the index was built."""
        return f"{self.cast_sql(column)} <=> ({other}::{self.cast_type})"

    def model_predicate(self, alias: str = "") -> str:
        """The index's WHERE clause, which the query must repeat (a literal, not a parameter:
        the planner matches a partial index's predicate at plan time)."""
        prefix = f"{alias}." if alias else ""
        return f"{prefix}model_id = {int(self.model_id)}"

    def create_sql(self, *, concurrently: bool) -> str:
        table = Embedding._meta.db_table
        return (
            f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {self.index_name} ON {table} "
            f"USING hnsw ({self.cast_sql()} {self.opclass}) WHERE {self.model_predicate()}"
        )


def pgvector_version() -> tuple[int, ...] | None:
    """The server's installed pgvector version (``pg_extension``), e.g. (0, 8, 0); None when absent."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        return None
    return tuple(int(part) for part in row[0].split(".") if part.isdigit())


def similarity_index_name(model_id: int) -> str:
    return f"embedding_m{int(model_id)}_hnsw"


def similarity_index_plan(model: EmbeddingModel, *, version: tuple[int, ...] | None = None) -> IndexPlan:
    """The plan for ``model``: ``vector`` up to 2,000 dimensions, ``halfvec`` up to 4,000
    when pgvector >= 0.7, exact search otherwise. ``version`` defaults to the server's."""
    dimensions = int(model.dimensions)
    if version is None:
        version = pgvector_version() or (0,)
    if dimensions <= MAX_VECTOR_INDEX_DIMENSIONS:
        kind, cast_type = IndexKind.VECTOR, f"vector({dimensions})"
    elif dimensions <= MAX_HALFVEC_INDEX_DIMENSIONS and tuple(version[:2]) >= HALFVEC_MIN_PGVECTOR:
        kind, cast_type = IndexKind.HALFVEC, f"halfvec({dimensions})"
    else:
        kind, cast_type = IndexKind.EXACT, f"vector({dimensions})"
    return IndexPlan(model.pk, dimensions, kind, similarity_index_name(model.pk), cast_type)


def _index_state(name: str) -> bool | None:
    """True: the index exists and is valid; False: it exists but is invalid (a
    concurrent build that failed half way); None: no such index."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND pg_catalog.pg_table_is_visible(c.oid)",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def similarity_index_exists(plan: IndexPlan) -> bool:
    return _index_state(plan.index_name) is True


def similarity_index_ensure(model: EmbeddingModel, *, plan: IndexPlan | None = None) -> bool:
    """Create the model's HNSW index when it is missing; True when this call created it.

    Outside a transaction the build is ``CONCURRENTLY`` (embedding writes go on); inside
    one (tests, a caller's atomic block) it is a plain build. An invalid leftover of a
    failed concurrent build is dropped and rebuilt. Exact plans have no index: False.
    """
    plan = plan or similarity_index_plan(model)
    if not plan.uses_index:
        return False
    state = _index_state(plan.index_name)
    if state is True:
        return False
    concurrently = not connection.in_atomic_block
    with connection.cursor() as cursor:
        if not concurrently:
            # Rows written earlier in this transaction leave deferred foreign-key checks
            # pending, and PostgreSQL refuses to index a table with pending trigger
            # events: run the checks now, then defer again (Django's default).
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        if state is False:
            cursor.execute(f"DROP INDEX {'CONCURRENTLY ' if concurrently else ''}IF EXISTS {plan.index_name}")
        cursor.execute(f"SET {'' if concurrently else 'LOCAL '}maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        try:
            cursor.execute(plan.create_sql(concurrently=concurrently))
        finally:
            if concurrently:
                cursor.execute("RESET maintenance_work_mem")
    return True
