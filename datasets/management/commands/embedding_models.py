"""``manage.py embedding_models list|add|remove|set-default``: edit embedding_models.toml.

Every change goes through ``datasets.embedding_registry``, which validates the whole
file before writing it atomically and keeps its comments; on bad input the command
stops with a ``CommandError`` and the file is left exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from datasets import embedding_registry
from datasets.embedding_registry import EmbeddingRegistryError

# (option dest, TOML field) for `add`, in the registry's canonical order.
_ADD_FIELDS = (
    ("name", "name"),
    ("dimensions", "dimensions"),
    ("type", "type"),
    ("api_endpoint", "api_endpoint"),
    ("max_tokens", "max_tokens"),
    ("max_batch_size", "max_batch_size"),
    ("api_key_env", "api_key_env"),
    ("concurrency", "concurrency"),
    ("requests_per_minute", "requests_per_minute"),
)


class Command(BaseCommand):
    help = (
        "List and edit the embedding model registry (CVSA_EMBEDDING_MODELS_FILE, by default "
        "embedding_models.toml). Changes are validated first; an invalid change leaves the file untouched."
    )

    def add_arguments(self, parser):
        parser.add_argument("--file", help="registry file (default: settings.CVSA_EMBEDDING_MODELS_FILE)")
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,add,remove,set-default}")

        actions.add_parser("list", help="show every model; * marks the default")

        add = actions.add_parser("add", help="append a [models.<key>] entry")
        add.add_argument("--key", required=True, help="registry key, e.g. openai-small")
        add.add_argument("--name", required=True, help="model name sent to the provider")
        add.add_argument("--type", required=True, choices=embedding_registry.PROVIDER_TYPES)
        add.add_argument("--dimensions", required=True, type=int)
        add.add_argument("--api-endpoint", help="base URL of an openai-compatible API, e.g. https://api.openai.com/v1")
        add.add_argument("--max-tokens", required=True, type=int)
        add.add_argument("--max-batch-size", required=True, type=int)
        add.add_argument("--api-key-env", help="NAME of the environment variable holding the API key (never the key)")
        add.add_argument("--concurrency", type=int, help="requests in flight at once (default 4)")
        add.add_argument("--requests-per-minute", type=int, help="client-side rate limit (default: none)")
        add.add_argument("--default", action="store_true", help="also make it the default model")

        remove = actions.add_parser("remove", help="delete an entry (not the default one)")
        remove.add_argument("key")

        set_default = actions.add_parser("set-default", help="make an entry the default model")
        set_default.add_argument("key")

    def handle(self, *args, action, file=None, **options):
        path = Path(file) if file else Path(settings.CVSA_EMBEDDING_MODELS_FILE)
        try:
            if action == "list":
                self._list(path)
            elif action == "add":
                fields = {"key": options["key"]}
                fields.update({field: options[dest] for dest, field in _ADD_FIELDS if options[dest] is not None})
                spec = embedding_registry.add_model(path, fields, make_default=options["default"])
                self.stdout.write(self.style.SUCCESS(
                    f"Added {spec.key} ({spec.type}, {spec.dimensions} dims) to {path}"
                    + (" as the default model." if options["default"] else ".")
                ))
            elif action == "remove":
                embedding_registry.remove_model(path, options["key"])
                self.stdout.write(self.style.SUCCESS(f"Removed {options['key']} from {path}."))
            elif action == "set-default":
                embedding_registry.set_default_model(path, options["key"])
                self.stdout.write(self.style.SUCCESS(f"{options['key']} is now the default model in {path}."))
        except EmbeddingRegistryError as error:
            raise CommandError("\n".join(error.errors)) from error
        except OSError as error:
            raise CommandError(f"cannot write {path}: {error.strerror or error}") from error

    def _list(self, path: Path) -> None:
        registry = embedding_registry.load_registry(path)
        rows = [("", "key", "name", "type", "dims", "max tokens", "batch", "endpoint", "api key env")]
        for spec in registry:
            if spec.api_key_env:
                key_state = f"{spec.api_key_env} ({'set' if spec.api_key_is_set else 'NOT SET'})"
            else:
                key_state = "-"
            rows.append((
                "*" if spec.key == registry.default_key else "",
                spec.key, spec.name, spec.type, str(spec.dimensions), str(spec.max_tokens),
                str(spec.max_batch_size), spec.api_endpoint or "-", key_state,
            ))
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        self.stdout.write(f"\n{len(registry)} model(s) in {path}; * = default ({registry.default_key}).")
