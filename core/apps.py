from django.apps import AppConfig
from django.urls import register_converter


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Core (shared mechanism)"

    def ready(self):
        from core.api import schema  # noqa: F401  (registers the session scheme's OpenAPI description)
        from core.api.path_params import PositiveBigIntConverter

        register_converter(PositiveBigIntConverter, "bigint")
