"""``manage.py embedding_models``: list, add, remove, set-default on a temporary copy."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from datasets.embedding_registry import load_registry

REPO_REGISTRY = Path(__file__).resolve().parents[2] / "embedding_models.toml"

ADD_REMOTE = [
    "add", "--key", "openai-small", "--name", "text-embedding-3-small", "--type", "openai-compatible",
    "--dimensions", "1536", "--api-endpoint", "https://api.openai.com/v1", "--max-tokens", "8191",
    "--max-batch-size", "64", "--api-key-env", "OPENAI_API_KEY",
]


@pytest.fixture
def registry(tmp_path, settings) -> Path:
    path = tmp_path / "embedding_models.toml"
    shutil.copyfile(REPO_REGISTRY, path)
    settings.CVSA_EMBEDDING_MODELS_FILE = path
    return path


def run(*args) -> str:
    out = StringIO()
    call_command("embedding_models", *args, stdout=out)
    return out.getvalue()


def test_list_shows_every_model_and_the_default(registry, monkeypatch):
    monkeypatch.delenv("ALIYUN_KEY", raising=False)

    output = run("list")

    assert "local-default" in output and "qwen3-embedding" in output and "text-embedding-v4" in output
    assert "ALIYUN_KEY (NOT SET)" in output
    assert "* = default (local-default)" in output


def test_list_says_a_key_is_set_without_showing_it(registry, monkeypatch):
    monkeypatch.setenv("ALIYUN_KEY", "sk-very-secret")

    output = run("list")

    assert "ALIYUN_KEY (set)" in output and "sk-very-secret" not in output


def test_add_appends_a_model_and_keeps_the_comments(registry):
    before = registry.read_text(encoding="utf-8")

    output = run(*ADD_REMOTE)

    assert "Added openai-small" in output
    after = registry.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n"))  # comments and existing entries untouched
    spec = load_registry(registry).get("openai-small")
    assert (spec.name, spec.dimensions, spec.max_batch_size, spec.api_key_env) == (
        "text-embedding-3-small", 1536, 64, "OPENAI_API_KEY")
    assert load_registry(registry).default_key == "local-default"
    assert "openai-small" in run("list")


def test_add_as_default_then_set_default_and_remove(registry):
    run(*ADD_REMOTE, "--default")
    assert load_registry(registry).default_key == "openai-small"

    with pytest.raises(CommandError, match="cannot remove the default model"):
        run("remove", "openai-small")

    run("set-default", "local-default")
    assert run("remove", "openai-small").startswith("Removed openai-small")
    assert "openai-small" not in load_registry(registry)
    assert registry.read_text(encoding="utf-8") == REPO_REGISTRY.read_text(encoding="utf-8")


@pytest.mark.parametrize("args,message", [
    (["add", "--key", "bad key!", "--name", "x", "--type", "openai-compatible", "--dimensions", "8",
      "--api-endpoint", "http://127.0.0.1:1/v1", "--max-tokens", "10", "--max-batch-size", "2"], "invalid model key"),
    (["add", "--key", "neg", "--name", "x", "--type", "openai-compatible", "--dimensions", "-3",
      "--api-endpoint", "http://127.0.0.1:1/v1", "--max-tokens", "10", "--max-batch-size", "2"], "dimensions"),
    (["add", "--key", "no-endpoint", "--name", "x", "--type", "openai-compatible", "--dimensions", "8",
      "--max-tokens", "10", "--max-batch-size", "2"], "api_endpoint: required"),
    (["add", "--key", "ftp", "--name", "x", "--type", "openai-compatible", "--dimensions", "8",
      "--api-endpoint", "ftp://example.com", "--max-tokens", "10", "--max-batch-size", "2"], "http"),
    (["add", "--key", "local-2", "--name", "x", "--type", "local", "--dimensions", "1024",
      "--max-tokens", "10", "--max-batch-size", "2"], "384"),
    (["add", "--key", "envy", "--name", "x", "--type", "openai-compatible", "--dimensions", "8",
      "--api-endpoint", "http://127.0.0.1:1/v1", "--max-tokens", "10", "--max-batch-size", "2",
      "--api-key-env", "sk-123 literal key"], "api_key_env"),
    (["add", "--key", "local-default", "--name", "x", "--type", "local", "--dimensions", "384",
      "--max-tokens", "10", "--max-batch-size", "2"], "already exists"),
    (["add", "--key", "words", "--name", "x", "--type", "local", "--dimensions", "many",
      "--max-tokens", "10", "--max-batch-size", "2"], "invalid int value"),
    (["add", "--key", "what", "--name", "x", "--type", "grpc", "--dimensions", "8",
      "--max-tokens", "10", "--max-batch-size", "2"], "invalid choice"),
    (["add", "--key", "half"], "required"),
    (["remove", "no-such-model"], "unknown embedding model"),
    (["set-default", "no-such-model"], "unknown embedding model"),
    (["remove", "local-default"], "cannot remove the default model"),
    (["add", "--key", "leaky", "--name", "x", "--type", "openai-compatible", "--dimensions", "8",
      "--api-endpoint", "https://api.example.com/v1?key=sk-secret", "--max-tokens", "10", "--max-batch-size", "2"],
     "api_endpoint: must not contain a query string"),
    (["add", "--key", "huge", "--name", "x", "--type", "openai-compatible", "--dimensions", "16001",
      "--api-endpoint", "https://api.example.com/v1", "--max-tokens", "10", "--max-batch-size", "2"],
     "dimensions: must be at most 16000"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_a_command_error_and_leaves_the_file_unchanged(registry, args, message):
    before = registry.read_bytes()

    with pytest.raises(CommandError, match=message):
        run(*args)

    assert registry.read_bytes() == before


def test_an_invalid_registry_file_is_reported_and_left_alone(registry):
    registry.write_text('model = "missing"\n', encoding="utf-8")

    with pytest.raises(CommandError, match="models: at least one"):
        run("list")
    with pytest.raises(CommandError):
        run(*ADD_REMOTE)
    assert registry.read_text(encoding="utf-8") == 'model = "missing"\n'


def test_file_option_overrides_the_setting(registry, tmp_path):
    other = tmp_path / "other.toml"
    shutil.copyfile(REPO_REGISTRY, other)

    run("--file", str(other), *ADD_REMOTE)

    assert "openai-small" in load_registry(other)
    assert "openai-small" not in load_registry(registry)
