"""What every benchmark shares: its own database on the embedded server (or
``DATABASE_URL``), migrated, and the binary COPY rows that seed ``Embedding`` fast."""

from __future__ import annotations

import os
import time

# PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 UTC.
POSTGRES_EPOCH_UNIX_SECONDS = 946_684_800


def setup_django(database: str) -> None:
    """Django set up on ``database`` (created on the embedded server when missing; the
    dev data is untouched), migrated. With ``DATABASE_URL`` set, that database is used."""
    from cvsa_ml import embedded_services

    if not os.environ.get("DATABASE_URL"):
        embedded_services.start_all()
        import psycopg

        with psycopg.connect(host=str(embedded_services.postgres_dir()), user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
                conn.execute(f'CREATE DATABASE "{database}"')
        os.environ["DATABASE_URL"] = embedded_services.database_url().rsplit("/", 1)[0] + f"/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cvsa_ml.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def embedding_rows_payload(model_id: int, checksums: list[str], vectors) -> bytes:
    """Binary COPY rows (id, model_id, checksum, dimensions, vector, created_at), ids 1..n."""
    import numpy as np

    from core import pgcopy

    count, dimensions = vectors.shape
    dtype = np.dtype([
        ("fields", ">i2"),
        ("id_length", ">i4"), ("id", ">i8"),
        ("model_length", ">i4"), ("model_id", ">i8"),
        ("checksum_length", ">i4"), ("checksum", "S64"),
        ("dimensions_length", ">i4"), ("dimensions", ">i4"),
        *[(f"vector_{name}" if name == "dimensions" else name, kind, *shape)
          for name, kind, *shape in pgcopy.vector_fields(dimensions)],
        ("created_length", ">i4"), ("created_at", ">i8"),
    ])
    rows = np.empty(count, dtype=dtype)
    rows["fields"] = 6
    rows["id_length"], rows["id"] = 8, np.arange(1, count + 1)
    rows["model_length"], rows["model_id"] = 8, model_id
    rows["checksum_length"], rows["checksum"] = 64, np.array([c.encode("ascii") for c in checksums], dtype="S64")
    rows["dimensions_length"], rows["dimensions"] = 4, dimensions
    rows["vector_length"], rows["vector_dimensions"], rows["unused"] = 4 + 4 * dimensions, dimensions, 0
    rows["values"] = vectors
    rows["created_length"], rows["created_at"] = 8, int((time.time() - POSTGRES_EPOCH_UNIX_SECONDS) * 1_000_000)
    return pgcopy.rows_payload(rows)


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def videos_copy(cursor, texts) -> int:
    """COPY one video per ``(title, description, tags)`` of ``texts``: ids 1..n, aids
    100,000,001.., then the id sequence moved past them. Returns n."""
    import io

    rows = io.StringIO()
    count = 0
    for count, (title, description, tags) in enumerate(texts, start=1):
        rows.write(f"{count}\t{100_000_000 + count}\t\t{_copy_text(title)}\t{_copy_text(description)}\t"
                   f"{_copy_text(tags)}\t\\N\t\t\\N\t\\N\t\t{{}}\tnow\tnow\n")
    with cursor.copy(
        "COPY labeling_video (id, aid, bvid, title, description, tags, uploader_mid, uploader_name, "
        "published_at, duration, cover_url, raw, created_at, updated_at) FROM STDIN"
    ) as copy:
        copy.write(rows.getvalue())
    cursor.execute("SELECT setval('labeling_video_id_seq', %s)", [max(count, 1)])
    return count


def bench_embedding_model(key: str, dimensions: int, *, name: str = "bench"):
    """The benchmark's embedding model row (an unreachable endpoint: benchmarks seed
    vectors themselves and never call a provider)."""
    from datasets.models import EmbeddingModel

    model, _ = EmbeddingModel.objects.update_or_create(
        key=key, defaults={"name": name, "provider_type": "openai-compatible", "dimensions": dimensions,
                           "api_endpoint": "http://127.0.0.1:9/v1", "max_tokens": 8192, "max_batch_size": 64})
    return model
