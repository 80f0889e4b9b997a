import pytest
from django.core.exceptions import ImproperlyConfigured

from cvsa_ml import embedded_services
from cvsa_ml.env import env_bool, env_int, env_list, secret_key


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("ON", True), ("0", False), ("no", False), ("", False)])
def test_env_bool_parses_common_spellings(raw, expected):
    assert env_bool("DEBUG", default=not expected, environ={"DEBUG": raw}) is expected


def test_env_bool_uses_default_when_unset():
    assert env_bool("DEBUG", default=True, environ={}) is True


def test_env_bool_rejects_garbage_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be one of"):
        env_bool("DEBUG", default=True, environ={"DEBUG": "maybe"})


def test_env_list_splits_and_trims():
    assert env_list("ALLOWED_HOSTS", ["x"], environ={"ALLOWED_HOSTS": " a.example , b.example,,"}) == ["a.example", "b.example"]
    assert env_list("ALLOWED_HOSTS", ["x"], environ={}) == ["x"]


def test_env_int_rejects_non_integer():
    assert env_int("N", 3, environ={"N": "7"}) == 7
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 3, environ={"N": "seven"})


def test_secret_key_from_environment_wins(tmp_path):
    assert secret_key({"SECRET_KEY": "from-env"}, debug=False, data_dir=tmp_path) == "from-env"
    assert not (tmp_path / "secret_key").exists()


def test_secret_key_required_without_debug(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        secret_key({}, debug=False, data_dir=tmp_path)


def test_dev_secret_key_is_generated_once_and_private(tmp_path):
    first = secret_key({}, debug=True, data_dir=tmp_path)
    assert secret_key({}, debug=True, data_dir=tmp_path) == first
    assert len(first) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_embedded_urls_point_into_the_data_dir(tmp_path):
    assert embedded_services.database_url(tmp_path).endswith("/cvsa_ml")
    assert "%2F" in embedded_services.database_url(tmp_path)
    assert embedded_services.broker_url(tmp_path, db=3) == f"redis+socket://{tmp_path}/redis/redis.sock?virtual_host=3"


def test_external_urls_disable_embedded_services():
    assert embedded_services.wanted_services({}) == ["postgres", "redis"]
    assert embedded_services.wanted_services({"DATABASE_URL": "postgres://x/y"}) == ["redis"]
    assert embedded_services.wanted_services({"DATABASE_URL": "p", "CELERY_BROKER_URL": "r"}) == []


def test_settings_parse_database_url(settings):
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert {queue.name for queue in settings.CELERY_TASK_QUEUES} == {"default", "embeddings", "training"}
