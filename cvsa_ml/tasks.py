from celery import shared_task

from cvsa_ml.health import database_health, vector_extension_health


@shared_task(name="cvsa_ml.tasks.worker_self_check")
def worker_self_check() -> dict:
    """Round trip through the broker that also proves the worker reaches the database."""
    return {
        "database": database_health().ok,
        "vector": vector_extension_health().ok,
    }
