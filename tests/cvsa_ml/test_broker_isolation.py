"""The tests' broker traffic never meets a running app's (``cvsa_ml.test_settings``)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from cvsa_ml.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_broker_key_of_the_tests_carries_this_sessions_prefix():
    prefix = celery_app.conf.broker_transport_options["global_keyprefix"]
    assert prefix.startswith("cvsa-test-") and prefix == os.environ["CVSA_TEST_BROKER_PREFIX"]
    queue = f"isolation-check-{uuid.uuid4().hex}"

    celery_app.send_task("cvsa_ml.tests.never_consumed", queue=queue)  # nobody consumes this queue

    with celery_app.connection_for_write() as connection:
        prefixed_client = connection.default_channel.client
        # The same server and db, seen without the prefix, as an app's worker sees it.
        raw = redis.Redis(connection_pool=prefixed_client.connection_pool)
        try:
            assert raw.llen(prefix + queue) == 1
            assert raw.exists(queue) == 0
        finally:
            raw.delete(prefix + queue)


def test_an_external_broker_url_still_gets_the_prefix_and_can_be_pointed_elsewhere():
    """With ``CELERY_BROKER_URL`` set (an external Redis that an app may share), the test
    settings keep the URL, add the prefix, and take the variable out of Celery's way, so
    a test that points ``app.conf.broker_url`` elsewhere really does."""
    env = {key: value for key, value in os.environ.items() if key != "CVSA_TEST_BROKER_PREFIX"}
    env.update(CELERY_BROKER_URL="redis://127.0.0.1:9/0", DJANGO_SETTINGS_MODULE="cvsa_ml.test_settings")
    code = (
        "import os, django; django.setup()\n"
        "from cvsa_ml.celery import app\n"
        "print(app.conf.broker_url)\n"
        "print(app.conf.broker_transport_options.get('global_keyprefix', ''))\n"
        "app.conf.broker_url = 'redis://elsewhere:1/0'\n"
        "print(app.conf.broker_url)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    url, prefix, patched = result.stdout.split()
    assert url == "redis://127.0.0.1:9/0"
    assert prefix.startswith("cvsa-test-") and prefix != os.environ["CVSA_TEST_BROKER_PREFIX"]
    assert patched == "redis://elsewhere:1/0"
