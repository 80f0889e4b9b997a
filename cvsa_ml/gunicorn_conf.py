"""Gunicorn settings for `manage.py serve` and for any deployment of the product:

    gunicorn -c python:cvsa_ml.gunicorn_conf

Why gunicorn with ``gthread`` workers: the app is synchronous Django (ORM, psycopg,
blocking provider calls), so an ASGI server would only run it in threads anyway.
Prefork processes isolate a crash or a leak to one worker, which the master replaces;
``HUP`` reloads them gracefully; threads inside each process let slow requests
(exports, imports) not block the others. The environment overrides every number here
(``WEB_CONCURRENCY``, ``CVSA_WEB_THREADS``, ``CVSA_WEB_TIMEOUT``; anything else through
``GUNICORN_CMD_ARGS``).
"""

import os
from pathlib import Path

from cvsa_ml import embedded_services
from cvsa_ml.env import env_int

wsgi_app = "cvsa_ml.wsgi:application"
bind = [os.environ.get("CVSA_ADDRPORT", "127.0.0.1:8000")]

worker_class = "gthread"
workers = env_int("WEB_CONCURRENCY", min(4, (os.cpu_count() or 1) + 1))
threads = env_int("CVSA_WEB_THREADS", 4)
# A request silent for this long is stuck: its worker is replaced.
timeout = env_int("CVSA_WEB_TIMEOUT", 120)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 2000
max_requests_jitter = 200

# `gunicornc` talks to this instance through the data dir, not a socket shared by every
# gunicorn of the user (the default is ~/.gunicorn/gunicorn.ctl).
control_socket = str(embedded_services.data_dir() / "gunicorn.ctl")

accesslog = "-"
errorlog = "-"
# The workers' heartbeat files on tmpfs: a busy disk cannot make a healthy worker look dead.
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"
