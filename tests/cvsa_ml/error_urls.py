"""The product's URLs plus views that fail, for the error page tests."""

from django.core.exceptions import PermissionDenied
from django.urls import path

from cvsa_ml.urls import urlpatterns as product_urlpatterns


class SecretFailure(RuntimeError):
    pass


def failing_view(request):
    local_secret = "local-variable-secret-41"  # noqa: F841 (a debug page would show it)
    raise SecretFailure("exception-text-secret-42")


def denied_view(request):
    raise PermissionDenied("permission-text-secret-43")


urlpatterns = [
    path("test-errors/fail/", failing_view),
    path("test-errors/denied/", denied_view),
    *product_urlpatterns,
]
