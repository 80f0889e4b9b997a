from django.core.management.base import CommandError
from django.db import DatabaseError, migrations, transaction
from pgvector.django import VectorExtension


class RequireVectorExtension(VectorExtension):
    """CREATE EXTENSION vector only where it is missing, and a clear error where the role may not.

    pgvector is not a trusted extension: only a superuser (or a managed service's admin
    role) can create it, so a deployment's ordinary role relies on a superuser having
    run it once. The check comes first, so such a role never attempts the statement
    when the extension is there; when it is missing and the attempt is refused, the
    migration fails before anything is recorded and can simply be run again.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql" and not self.extension_exists(schema_editor, self.name):
            _check_vector_can_be_created(schema_editor)
        super().database_forwards(app_label, schema_editor, from_state, to_state)


def _check_vector_can_be_created(schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, current_database(), "
            "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector'), "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        )
        role, database, available, superuser = cursor.fetchone()
    if not available:
        raise CommandError(
            f"The PostgreSQL server of database {database!r} has no pgvector extension installed; "
            "install pgvector (0.7 or later) on the server, then run migrate again."
        )
    if superuser:
        return
    # Managed services let an admin role that is not a superuser create allow-listed
    # extensions: try, and turn a refusal into the one command a superuser must run.
    try:
        with transaction.atomic(using=schema_editor.connection.alias), schema_editor.connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except DatabaseError as error:
        raise CommandError(
            f"The PostgreSQL role {role!r} may not create the pgvector extension in database "
            f"{database!r} ({str(error).strip().splitlines()[0]}). A superuser must run once:\n"
            f'    psql -d "{database}" -c "CREATE EXTENSION vector;"\n'
            "and, so that the test suite's database inherits it, once in template1:\n"
            '    psql -d template1 -c "CREATE EXTENSION vector;"\n'
            "then run migrate again."
        ) from None


class Migration(migrations.Migration):
    """pgvector first: every app above relies on it (embeddings, similarity)."""

    initial = True
    dependencies = []
    operations = [RequireVectorExtension()]
