"""Settings for CVSA ML, read from the environment with dev defaults that need nothing set.

DATABASE_URL and CELERY_BROKER_URL switch from the embedded PostgreSQL/Redis (started by
``manage.py services start`` in CVSA_DATA_DIR) to real external servers.
"""

import os
from pathlib import Path

import dj_database_url
from kombu import Queue

from cvsa_ml import embedded_services
from cvsa_ml.env import allowed_hosts, env_bool, env_int, env_list, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = embedded_services.data_dir()

# Production by default (`make run`); `make dev` sets DEBUG=1 for the development server.
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key(os.environ, data_dir=DATA_DIR)
# Loopback names plus the host `manage.py serve` binds (CVSA_ADDRPORT), unless set.
ALLOWED_HOSTS = allowed_hosts(os.environ)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "core",
    "labeling",
    "datasets",
    "experiments",
    "training",
    "cvsa_ml",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Right after security: static files are answered before sessions or the database are touched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "cvsa_ml.middleware.PagesLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "cvsa_ml.urls"
WSGI_APPLICATION = "cvsa_ml.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.roles",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or embedded_services.database_url(DATA_DIR),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production: content-hashed, pre-compressed copies that WhiteNoise lets browsers cache
    # for a year; they exist only after `collectstatic` (which `manage.py serve` runs at
    # start). DEBUG (and the test settings) use the source files as they are.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Files WhiteNoise serves at the site root (/favicon.ico), outside STATIC_URL.
WHITENOISE_ROOT = BASE_DIR / "webroot"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"

# The API's shared mechanism lives in core.api (parsing, bounds, errors, CSRF rule, schema).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "core.api.authentication.SameOriginSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON in and out; endpoints that take a file add the multipart parser themselves.
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Request bodies above this many bytes are refused with 413 (file uploads stream to disk instead).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "CVSA ML API",
    "DESCRIPTION": "Labeling, embeddings, datasets and experiments of the CVSA video archive. Every error is "
                   'JSON `{"detail": "..."}`; lists are paginated with a maximum page size.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from the installed package (drf-spectacular-sidecar), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # core.api.path_params.PositiveBigIntConverter: an id that fits PostgreSQL's bigint.
    "PATH_CONVERTER_OVERRIDES": {"bigint": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
    # Two "status" choice sets: each gets its own enum name.
    "ENUM_NAME_OVERRIDES": {
        "DatasetTaskStatusEnum": "datasets.models.DatasetTaskStatus",
        "RunStatusEnum": "experiments.models.RunStatus",
        "ModelStageEnum": "training.models.ModelStage",
        "VideoImportFormatEnum": "labeling.video_import.FORMATS",
        "LabelImportFormatEnum": "labeling.label_import.FORMATS",
    },
}

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded_services.broker_url(
    DATA_DIR, db=env_int("CVSA_REDIS_DB", 0)
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "embeddings", "training")]
CELERY_TASK_ROUTES = {
    # The sweeper is quick and must not wait behind long builds: default queue.
    "datasets.tasks.sweep_stale_dataset_tasks": {"queue": "default"},
    "datasets.tasks.*": {"queue": "embeddings"},
    # A sweep's advance step is quick bookkeeping: never behind training runs.
    "training.tasks.sweep_advance": {"queue": "default"},
    "training.tasks.*": {"queue": "training"},
}
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Job rows carry heartbeats (DESIGN §6), so a redelivery after this timeout is detected.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# No beat needed: every worker runs the sweeper (jobs whose worker died) on a timer,
# one sweep at a time across workers (a PostgreSQL advisory lock): cvsa_ml.celery.
CVSA_SWEEP_INTERVAL_SECONDS = env_int("CVSA_SWEEP_INTERVAL_SECONDS", 60)
# A job whose worker died is taken over (resumed from what it stored) until this many
# workers have started it; then it is failed and waits for a manual resume.
CVSA_JOB_MAX_ATTEMPTS = env_int("CVSA_JOB_MAX_ATTEMPTS", 3)
if CVSA_JOB_MAX_ATTEMPTS < 1 or CVSA_SWEEP_INTERVAL_SECONDS < 1:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CVSA_JOB_MAX_ATTEMPTS and CVSA_SWEEP_INTERVAL_SECONDS must be at least 1")
CELERY_TASK_EAGER_PROPAGATES = True
# Labeling: effective labels each video needs (the queue stops serving it then), and how
# long a served card stays reserved for its labeler.
CVSA_LABELING_OVERLAP = env_int("CVSA_LABELING_OVERLAP", 2)
CVSA_LABELING_RESERVATION_SECONDS = env_int("CVSA_LABELING_RESERVATION_SECONDS", 600)
if not 1 <= CVSA_LABELING_OVERLAP <= 20 or CVSA_LABELING_RESERVATION_SECONDS < 1:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CVSA_LABELING_OVERLAP must be 1 to 20 and CVSA_LABELING_RESERVATION_SECONDS at least 1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # httpx logs request URLs at INFO; keep it quiet so endpoints with keys in query strings never leak.
    "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore", "openai")},
}

# A running data job whose heartbeat is older than this is marked failed by the sweeper.
CVSA_DATASET_TASK_STALE_SECONDS = env_int("CVSA_DATASET_TASK_STALE_SECONDS", 300)
# A running training run writes a heartbeat at least every second while it trains; one
# silent this long lost its worker (the sweeper re-queues or fails it).
CVSA_RUN_STALE_SECONDS = env_int("CVSA_RUN_STALE_SECONDS", 300)
# Wall-clock limit of one training run (then it fails with that reason).
CVSA_TRAINING_TIME_LIMIT_SECONDS = env_int("CVSA_TRAINING_TIME_LIMIT_SECONDS", 6 * 3600)

CVSA_EMBEDDING_MODELS_FILE = Path(os.environ.get("CVSA_EMBEDDING_MODELS_FILE") or BASE_DIR / "embedding_models.toml")

# Run artifacts (model weights, logs) live under here, one folder per run.
CVSA_ARTIFACTS_DIR = Path(os.environ.get("CVSA_ARTIFACTS_DIR") or DATA_DIR / "artifacts")

# CVSA_HTTPS=1 says the deployment is reached over HTTPS through a proxy that sets
# X-Forwarded-Proto: secure cookies, HSTS, and the proxy's scheme trusted. Off by default,
# because DEBUG is off on plain http://127.0.0.1 too, where secure cookies break the login.
CVSA_HTTPS = env_bool("CVSA_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", CVSA_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", CVSA_HTTPS)
if CVSA_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
