from django.apps import AppConfig


class CvsaMlConfig(AppConfig):
    name = "cvsa_ml"
    verbose_name = "CVSA ML"
