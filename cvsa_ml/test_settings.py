"""Settings for the test suite: the real stack, with test-only speed-ups and isolation."""

import os

from cvsa_ml import embedded_services
from cvsa_ml.settings import *  # noqa: F403
from cvsa_ml.settings import DATA_DIR

# A dev worker consuming the same Redis must never take the tests' tasks: another db.
if not os.environ.get("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = embedded_services.broker_url(DATA_DIR, db=15)
    CELERY_RESULT_BACKEND = CELERY_BROKER_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]

# A pathological plan must fail its test within a minute, never hang CI for its whole budget.
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c statement_timeout=60000"  # noqa: F405
