"""Start (or reuse) the embedded PostgreSQL and Redis before any test touches them."""

import os
import shutil

from django.conf import settings

from cvsa_ml import embedded_services


def pytest_sessionstart(session):
    # The test settings take CELERY_BROKER_URL out of the environment (Celery would let it
    # override the configuration), so they say themselves whether the broker is external.
    environ = dict(os.environ)
    if getattr(settings, "CVSA_TEST_EXTERNAL_BROKER", False):
        environ["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    embedded_services.start_all(environ=environ)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CVSA_TEST_ARTIFACTS_DIR") and settings.CVSA_ARTIFACTS_DIR.name.startswith("cvsa-test-artifacts-"):
        shutil.rmtree(settings.CVSA_ARTIFACTS_DIR, ignore_errors=True)
