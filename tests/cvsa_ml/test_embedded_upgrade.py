"""A data dir made by the previous embedded PostgreSQL (the `pgserver` 0.1.4 wheel:
PostgreSQL 16.2, pgvector 0.6.2) keeps working under the bundled binaries.

Slow-ish (a few seconds each): every test initialises and starts real servers in its
own short data dir under /tmp, and stops them afterwards.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cvsa_ml import embedded_services as es

pytestmark = pytest.mark.slow

OLD_PACKAGE = "pgserver"  # requirements-dev.txt keeps it for these tests only


def _old_install_dir() -> Path:
    spec = importlib.util.find_spec(OLD_PACKAGE)
    assert spec is not None and spec.submodule_search_locations, f"{OLD_PACKAGE} (requirements-dev.txt) is missing"
    return Path(spec.submodule_search_locations[0]) / "pginstall"


@pytest.fixture
def short_data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="cvsa-u", dir="/tmp"))
    try:
        yield base
    finally:
        pgdata = es.postgres_dir(base)
        try:
            es.postgres_stop(base)
        finally:
            if es._pg_isready(pgdata) in (0, 1):  # still the old binaries' server
                _old_pg_ctl(pgdata, "stop", "-m", "immediate")
            shutil.rmtree(base, ignore_errors=True)


def _old_pg_ctl(pgdata: Path, *args: str) -> None:
    es._run(
        [str(_old_install_dir() / "bin" / "pg_ctl"), "-D", str(pgdata), "-w", *args],
        what="old pg_ctl", user=es._postgres_run_as(),
    )


def _connect(pgdata: Path, database: str = es.POSTGRES_DATABASE) -> psycopg.Connection:
    return psycopg.connect(host=str(pgdata), user=es.POSTGRES_USER, dbname=database, autocommit=True)


def _make_data_dir_with_old_package(base: Path) -> Path:
    """initdb + start with the old binaries, then an embeddings-like table with one row."""
    old_bin = _old_install_dir() / "bin"
    pgdata = es.postgres_dir(base)
    pgdata.mkdir(parents=True)
    user = es._ensure_system_user()
    if user:
        es._make_accessible_to(pgdata, user, _old_install_dir())
    es._run(
        [str(old_bin / "initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
         "-U", es.POSTGRES_USER],
        what="old initdb", user=user,
    )
    _old_pg_ctl(pgdata, "-l", str(pgdata / "server.log"), "-o", f"-h '' -k {pgdata}", "start")
    with _connect(pgdata, "postgres") as connection:
        assert connection.execute("SHOW server_version").fetchone()[0] == "16.2"
        connection.execute(f'CREATE DATABASE "{es.POSTGRES_DATABASE}"')
    with _connect(pgdata) as connection:
        connection.execute("CREATE EXTENSION vector")
        assert connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() == ("0.6.2",)
        connection.execute("CREATE TABLE embedding (id int PRIMARY KEY, v vector(3) NOT NULL)")
        connection.execute("INSERT INTO embedding VALUES (1, '[1,2,3]')")
    return pgdata


@pytest.mark.parametrize("old_server_still_running", [False, True], ids=["stopped", "still-running"])
def test_a_data_dir_of_the_old_package_starts_upgraded_with_its_data(short_data_dir, old_server_still_running):
    pgdata = _make_data_dir_with_old_package(short_data_dir)
    if not old_server_still_running:
        _old_pg_ctl(pgdata, "stop", "-m", "fast")

    assert es.postgres_start(short_data_dir).running

    with _connect(pgdata) as connection:
        assert connection.execute("SHOW server_version").fetchone() == ("16.14",)
        assert connection.execute("SELECT id, v::text FROM embedding").fetchall() == [(1, "[1,2,3]")]
        assert connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() == ("0.8.5",)
        assert connection.execute("SELECT v::halfvec(3)::text FROM embedding").fetchone() == ("[1,2,3]",)
    # A second start (the next `make run`) finds everything current and changes nothing.
    assert es.postgres_start(short_data_dir).running
    assert (pgdata / es.PGVECTOR_MARKER).read_text().strip() == "0.8.5"


def test_the_extension_update_reaches_every_database_and_is_idempotent(short_data_dir):
    pgdata = _make_data_dir_with_old_package(short_data_dir)
    with _connect(pgdata, "postgres") as connection:
        connection.execute("CREATE DATABASE other")
    with _connect(pgdata, "other") as connection:
        connection.execute("CREATE EXTENSION vector")
    with _connect(pgdata, "template1") as connection:
        connection.execute("CREATE EXTENSION vector")
    _old_pg_ctl(pgdata, "stop", "-m", "fast")

    es.postgres_start(short_data_dir)
    (pgdata / es.PGVECTOR_MARKER).unlink()  # as if interrupted before the marker: runs again
    es.postgres_stop(short_data_dir)
    es.postgres_start(short_data_dir)

    for database in (es.POSTGRES_DATABASE, "other", "template1"):
        with _connect(pgdata, database) as connection:
            assert connection.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone() == ("0.8.5",), database
    with _connect(pgdata, "postgres") as connection:  # never given the extension, still without it
        assert connection.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (0,)


def test_a_data_dir_of_another_major_version_is_refused_with_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(es, "_running_as_root", lambda: False)
    pgdata = es.postgres_dir(tmp_path)
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("15\n")

    with pytest.raises(es.EmbeddedServiceError, match=r"made by PostgreSQL 15, but the bundled binaries are PostgreSQL 16\.14: dump it"):
        es.postgres_start(tmp_path)
    assert not (pgdata / "postmaster.pid").exists()


def test_hnsw_over_3072_dimensions_as_halfvec_works_on_the_embedded_server(short_data_dir):
    es.postgres_start(short_data_dir)
    pgdata = es.postgres_dir(short_data_dir)

    with _connect(pgdata) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        connection.execute("CREATE TABLE embedding (id int PRIMARY KEY, v vector(3072) NOT NULL)")
        connection.execute(
            "INSERT INTO embedding SELECT n, array_fill((n + 1)::real, ARRAY[3072])::vector FROM generate_series(1, 3) AS n"
        )
        connection.execute(
            "CREATE INDEX embedding_v_hnsw ON embedding USING hnsw ((v::halfvec(3072)) halfvec_cosine_ops)"
        )
        connection.execute("SET enable_seqscan = off")
        query = (
            "SELECT id FROM embedding ORDER BY v::halfvec(3072) <=> array_fill(1::real, ARRAY[3072])::halfvec(3072) "
            "LIMIT 3"
        )
        plan = "\n".join(row[0] for row in connection.execute(f"EXPLAIN {query}"))
        assert "embedding_v_hnsw" in plan
        assert sorted(row[0] for row in connection.execute(query)) == [1, 2, 3]
