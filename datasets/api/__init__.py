"""The old ML panel client's REST contract (``docs/ml_panel_contract.md``), plus resume.

Served at ``/api/v1/`` and, unchanged, at ``/v1/`` (the client's default base URL); paths
have no trailing slash. ``serializers`` holds the request and response shapes (field names
and types follow the client's ``types/api.ts``: ``dataset_id`` / ``task_id`` are strings),
``views`` one thin view per action over the app's services and selectors, ``urls`` both
mounts.

Errors are the shared ones of ``core.api``: ``{"detail": "<string>"}`` with 400 for bad
input naming the field (nothing is written: the services validate before their
transaction), 404 for an unknown id, 409 for a version that is not ready, 413 for one too
large to inline, and 503 only for an invalid registry file on the server (mapped below,
once, for every view).
"""

from core.api.errors import ServiceUnavailable, map_exception
from datasets.embedding_registry import EmbeddingRegistryError

map_exception(EmbeddingRegistryError, lambda exc: ServiceUnavailable(f"Embedding model registry unavailable: {exc}"))
