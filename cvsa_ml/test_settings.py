"""Settings for the test suite: the real stack, with test-only speed-ups and isolation."""

import os
import tempfile
import uuid
from pathlib import Path

from cvsa_ml import embedded_services
from cvsa_ml.settings import *  # noqa: F403
from cvsa_ml.settings import CELERY_BROKER_TRANSPORT_OPTIONS, DATA_DIR

# The tests' broker traffic never meets an app's, in every setup: the embedded Redis
# uses another db, and every key (queues, unacked messages, the workers' control
# channel, results) carries a prefix of this test session, passed on to the worker
# processes the tests start (they inherit the environment). So a running app's
# worker cannot take a test's job, nor a test worker an app's, even on an external
# Redis (``CELERY_BROKER_URL``), nor two test sessions each other's.
TEST_BROKER_PREFIX = os.environ.setdefault("CVSA_TEST_BROKER_PREFIX", f"cvsa-test-{uuid.uuid4().hex[:12]}:")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded_services.broker_url(DATA_DIR, db=15)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
# Whether the broker is an external server: the root conftest then starts no embedded Redis.
CVSA_TEST_EXTERNAL_BROKER = bool(os.environ.get("CELERY_BROKER_URL"))
# Celery reads these two variables before its configuration: drop them so the URLs above
# are the ones in force (and a test can point ``app.conf.broker_url`` elsewhere).
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("CELERY_RESULT_BACKEND", None)
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": TEST_BROKER_PREFIX}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": TEST_BROKER_PREFIX}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]

# A pathological plan must fail its test within a minute, never hang CI for its whole budget.
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c statement_timeout=60000"  # noqa: F405

# Templates resolve {% static %} against the source files: no collectstatic before tests.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# Tests serve static files from the source folders (no collectstatic into STATIC_ROOT).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Run artifacts (weights, logs) of a test session go to a folder of its own, shared
# with the worker processes it starts (they inherit the environment) and removed at
# the end of the session: run ids restart with every test database, so a shared
# folder would mix sessions' files, or overwrite an app's.
CVSA_ARTIFACTS_DIR = Path(
    os.environ.setdefault("CVSA_TEST_ARTIFACTS_DIR", tempfile.mkdtemp(prefix="cvsa-test-artifacts-"))
)
