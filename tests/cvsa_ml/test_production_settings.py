"""The settings `make run` gets from an empty environment are production settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGURING = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CVSA_ADDRPORT", "CVSA_HTTPS", "SESSION_COOKIE_SECURE",
               "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT"}
PROBE = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "staticfiles": settings.STORAGES["staticfiles"]["BACKEND"],
    "MIDDLEWARE": settings.MIDDLEWARE,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
}))
"""


def production_settings(data_dir: Path, **environ: str) -> dict:
    """cvsa_ml.settings as a fresh process sees them with only ``environ`` set."""
    env = {key: value for key, value in os.environ.items() if key not in CONFIGURING}
    env.update({"DJANGO_SETTINGS_MODULE": "cvsa_ml.settings", "CVSA_DATA_DIR": str(data_dir), **environ})
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_nothing_set_means_production_with_a_generated_secret_key(tmp_path):
    settings = production_settings(tmp_path)

    assert settings["DEBUG"] is False
    key_file = tmp_path / "secret_key"
    assert settings["SECRET_KEY"] == key_file.read_text() and len(settings["SECRET_KEY"]) > 40
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert production_settings(tmp_path)["SECRET_KEY"] == settings["SECRET_KEY"]  # sessions survive a restart
    assert settings["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost"]
    assert settings["staticfiles"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    middleware = settings["MIDDLEWARE"]
    assert middleware.index("whitenoise.middleware.WhiteNoiseMiddleware") == (
        middleware.index("django.middleware.security.SecurityMiddleware") + 1
    )


def test_plain_http_login_works_with_debug_off(tmp_path):
    # Secure cookies are never sent back over http://127.0.0.1: the login would loop.
    settings = production_settings(tmp_path)

    assert settings["SESSION_COOKIE_SECURE"] is False and settings["CSRF_COOKIE_SECURE"] is False
    assert settings["SECURE_PROXY_SSL_HEADER"] is None and settings["SECURE_HSTS_SECONDS"] == 0


def test_behind_https_cookies_are_secure_and_hsts_is_on(tmp_path):
    settings = production_settings(tmp_path, CVSA_HTTPS="1")

    assert settings["SESSION_COOKIE_SECURE"] is True and settings["CSRF_COOKIE_SECURE"] is True
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600


def test_environment_wins(tmp_path):
    settings = production_settings(tmp_path, SECRET_KEY="from-env", DEBUG="1", CVSA_ADDRPORT="cvsa.lan:8080")

    assert settings["SECRET_KEY"] == "from-env" and not (tmp_path / "secret_key").exists()
    assert settings["DEBUG"] is True
    # DEBUG serves the source files: no collectstatic needed for the development server.
    assert settings["staticfiles"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
    assert settings["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "cvsa.lan"]


@pytest.mark.django_db
def test_login_over_http_sets_cookies_the_browser_sends_back(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests-1"})

    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"] == ""
    assert client.get("/").status_code == 200
