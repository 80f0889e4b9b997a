import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured

from cvsa_ml import embedded_services
from cvsa_ml.bootstrap import demo_admin_bootstrap, groups_bootstrap
from cvsa_ml.env import (
    allowed_hosts,
    env_bool,
    env_int,
    env_list,
    read_or_create_private_file,
    secret_key,
    split_addrport,
)


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
    (tmp_path / "secret_key").write_text("generated-earlier")
    assert secret_key({"SECRET_KEY": "from-env"}, data_dir=tmp_path) == "from-env"


def test_secret_key_is_generated_once_and_private(tmp_path):
    # What `make run` (DEBUG off, nothing set) relies on: no SECRET_KEY needed.
    first = secret_key({}, data_dir=tmp_path)
    assert secret_key({}, data_dir=tmp_path) == first
    assert len(first) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secret_key").read_text() == first


def test_empty_secret_key_file_is_regenerated_not_used(tmp_path):
    (tmp_path / "secret_key").write_text("\n")  # what a crash of the old touch-then-write left

    key = secret_key({}, data_dir=tmp_path)

    assert len(key) > 40
    assert secret_key({}, data_dir=tmp_path) == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_allowed_hosts_default_to_loopback_plus_the_host_serve_binds():
    assert allowed_hosts({}) == ["127.0.0.1", "localhost"]
    assert allowed_hosts({"CVSA_ADDRPORT": "cvsa.lan:8080"}) == ["127.0.0.1", "localhost", "cvsa.lan"]
    assert allowed_hosts({"CVSA_ADDRPORT": "127.0.0.1:8080"}) == ["127.0.0.1", "localhost"]
    assert allowed_hosts({"CVSA_ADDRPORT": "[::1]:8080"}) == ["127.0.0.1", "localhost", "[::1]"]
    # A wildcard bind names no host: clients' names must be listed.
    assert allowed_hosts({"CVSA_ADDRPORT": "0.0.0.0:8000"}) == ["127.0.0.1", "localhost"]


def test_allowed_hosts_from_the_environment_replace_the_defaults():
    environ = {"ALLOWED_HOSTS": "cvsa.example.org", "CVSA_ADDRPORT": "0.0.0.0:80"}
    assert allowed_hosts(environ) == ["cvsa.example.org"]


@pytest.mark.parametrize(("addrport", "expected"), [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), ("8001", ("127.0.0.1", 8001)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9000", ("::1", 9000)), ("host.lan:1", ("host.lan", 1)),
])
def test_split_addrport(addrport, expected):
    assert split_addrport(addrport) == expected


@pytest.mark.parametrize("addrport", ["", "localhost", "localhost:http", ":8000"])
def test_split_addrport_rejects_garbage_naming_the_variable(addrport):
    with pytest.raises(ImproperlyConfigured, match="CVSA_ADDRPORT must be HOST:PORT"):
        split_addrport(addrport)


def _race(count: int, call):
    barrier = threading.Barrier(count)

    def racer(_):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(racer, range(count)))


def test_concurrent_creators_agree_on_the_first_writers_value(tmp_path):
    counter = iter(range(1000))
    path = tmp_path / "nested" / "secret"

    values = _race(16, lambda: read_or_create_private_file(path, lambda: f"value-{next(counter)}"))

    assert len(set(values)) == 1
    assert path.read_text() == values[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["secret"]  # no temp files left


def test_processes_starting_together_get_one_complete_secret_key(tmp_path):
    keys = _race(16, lambda: secret_key({}, data_dir=tmp_path))

    assert len(set(keys)) == 1 and len(keys[0]) > 40


def test_concurrent_regeneration_of_an_empty_file_agrees_on_one_value(tmp_path):
    counter = iter(range(1000))
    path = tmp_path / "secret"
    path.write_text("")

    values = _race(16, lambda: read_or_create_private_file(path, lambda: f"value-{next(counter)}"))

    assert len(set(values)) == 1 and values[0].startswith("value-")
    assert path.read_text() == values[0]


def test_demo_credentials_file_is_private_and_holds_the_password(settings, tmp_path, db):
    settings.DATA_DIR = tmp_path
    (tmp_path / "demo-credentials").write_text("")  # an empty leftover is never a password
    groups_bootstrap()

    credentials = demo_admin_bootstrap()

    credentials_file = tmp_path / "demo-credentials"
    assert credentials.password and credentials_file.read_text() == credentials.password
    assert credentials_file.stat().st_mode & 0o777 == 0o600
    assert demo_admin_bootstrap().password == credentials.password


def test_demo_password_from_the_environment_replaces_the_saved_one(settings, tmp_path, db):
    settings.DATA_DIR = tmp_path
    groups_bootstrap()
    demo_admin_bootstrap()

    credentials = demo_admin_bootstrap(password="chosen-pw-123")

    assert credentials.password == "chosen-pw-123"
    assert (tmp_path / "demo-credentials").read_text() == "chosen-pw-123"
    assert (tmp_path / "demo-credentials").stat().st_mode & 0o777 == 0o600
    assert demo_admin_bootstrap().password == "chosen-pw-123"


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
