"""`migrate` as an ordinary role of an external PostgreSQL (not a superuser).

The "external" server is a second cluster started from the embedded binaries in a
short tmp dir, with its own socket: its superuser installs pgvector where the README
says, and `manage.py migrate` runs in a subprocess as a role with only CREATEDB.
Slow-ish: one server start and a few migrate runs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.core.management.base import CommandError

from cvsa_ml import embedded_services as es

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
APP_ROLE = "cvsa_app"


@dataclass(frozen=True)
class ExternalServer:
    base: Path
    socket_dir: Path

    def connect(self, database: str, *, user: str = es.POSTGRES_USER) -> psycopg.Connection:
        return psycopg.connect(host=str(self.socket_dir), user=user, dbname=database, autocommit=True)

    def run_as_superuser(self, database: str, sql: str) -> None:
        with self.connect(database) as connection:
            connection.execute(sql)

    def database_url(self, database: str) -> str:
        return f"postgres://{APP_ROLE}@{quote(str(self.socket_dir), safe='')}/{database}"

    def migrate(self, database: str) -> subprocess.CompletedProcess:
        env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE",)}
        env |= {
            "DATABASE_URL": self.database_url(database),
            # Never reached by migrate; set so nothing falls back to an embedded broker.
            "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",
            "CVSA_DATA_DIR": str(self.base),
        }
        return subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "--skip-checks"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )

    def applied_migrations(self, database: str, app: str) -> int:
        with self.connect(database) as connection:
            if connection.execute("SELECT to_regclass('django_migrations')").fetchone() == (None,):
                return 0
            return connection.execute("SELECT count(*) FROM django_migrations WHERE app = %s", [app]).fetchone()[0]


@pytest.fixture(scope="module")
def external_server() -> Iterator[ExternalServer]:
    base = Path(tempfile.mkdtemp(prefix="cvsa-x", dir="/tmp"))
    try:
        es.postgres_start(base)
        server = ExternalServer(base, es.postgres_dir(base))
        server.run_as_superuser("postgres", f"CREATE ROLE {APP_ROLE} LOGIN CREATEDB NOSUPERUSER")
        yield server
    finally:
        try:
            es.postgres_stop(base)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def test_the_app_role_is_an_ordinary_role(external_server):
    with external_server.connect("postgres", user=APP_ROLE) as connection:
        assert connection.execute("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone() == (
            False,
            True,
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("CREATE EXTENSION vector")


def test_migrate_as_a_non_superuser_succeeds_when_template1_has_the_extension(external_server):
    external_server.run_as_superuser("template1", "CREATE EXTENSION IF NOT EXISTS vector")
    try:
        # The role creates its own database, as the test runner does for the test database.
        with external_server.connect("postgres", user=APP_ROLE) as connection:
            connection.execute("CREATE DATABASE app_from_template1")

        result = external_server.migrate("app_from_template1")

        assert result.returncode == 0, result.stderr
        assert "Applying labeling.0001_vector_extension... OK" in result.stdout
        assert external_server.applied_migrations("app_from_template1", "datasets") >= 1
    finally:
        external_server.run_as_superuser("template1", "DROP EXTENSION IF EXISTS vector")


def test_migrate_without_the_extension_names_the_superuser_command_and_can_be_retried(external_server):
    external_server.run_as_superuser("postgres", f"CREATE DATABASE app_bare TEMPLATE template0 OWNER {APP_ROLE}")

    refused = external_server.migrate("app_bare")

    assert refused.returncode == 1
    assert f"The PostgreSQL role '{APP_ROLE}' may not create the pgvector extension in database 'app_bare'" in refused.stderr
    assert 'psql -d "app_bare" -c "CREATE EXTENSION vector;"' in refused.stderr
    assert 'psql -d template1 -c "CREATE EXTENSION vector;"' in refused.stderr
    assert "Traceback" not in refused.stderr
    assert external_server.applied_migrations("app_bare", "labeling") == 0
    assert external_server.applied_migrations("app_bare", "datasets") == 0

    external_server.run_as_superuser("app_bare", "CREATE EXTENSION vector")
    retried = external_server.migrate("app_bare")

    assert retried.returncode == 0, retried.stderr
    assert external_server.applied_migrations("app_bare", "labeling") >= 1
    assert external_server.applied_migrations("app_bare", "datasets") >= 1


def test_a_server_without_pgvector_is_named_as_such():
    """A server without pgvector's files cannot be made from the bundled binaries: the
    migration's check is fed what such a server answers instead."""
    migration = importlib.import_module("labeling.migrations.0001_vector_extension")

    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql, params=None):
            self.sql = sql

        def fetchone(self):
            return ("cvsa_app", "app", False, False)

    class SchemaEditor:
        class connection:  # noqa: N801
            alias = "default"

            @staticmethod
            def cursor():
                return Cursor()

    with pytest.raises(CommandError, match="database 'app' has no pgvector extension installed; install pgvector"):
        migration._check_vector_can_be_created(SchemaEditor())
