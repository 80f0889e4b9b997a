"""One place where errors become API responses: always ``{"detail": "..."}`` with a 4xx or 503.

Views and services raise; nothing maps status codes by hand:

- Django's ``ValidationError`` (services) and DRF's become 400; field errors are flattened
  into one readable ``detail`` (the ML panel client reads it as a string) and kept, by field,
  under ``errors``.
- ``ObjectDoesNotExist`` (a selector's ``.get()``) becomes 404 with the view's
  ``not_found_detail`` ("Dataset not found"), so a view needs no try/except per lookup.
- ``Conflict`` (409), ``PayloadTooLarge`` (413) and ``ServiceUnavailable`` (503) are the
  statuses DRF has no exception for.
- A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's ``RequestDataTooBig``) is a 413 that
  states the limit, not Django's HTML 400.
- A domain error of an app (say, an invalid model registry) is mapped once with
  ``map_exception`` by the app's API package, because core knows no domain.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from core.validation import join_messages

DEFAULT_NOT_FOUND_DETAIL = "Not found."


class Conflict(exceptions.APIException):
    """The request is valid but the resource's state forbids it now (a version still building)."""

    status_code = 409
    default_detail = "Conflict"
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "Request or response too large"
    default_code = "too_large"


class ServiceUnavailable(exceptions.APIException):
    """A server-side dependency (a configuration file, the database) is broken: not bad input."""

    status_code = 503
    default_detail = "Service unavailable"
    default_code = "unavailable"


_DOMAIN_EXCEPTIONS: dict[type[Exception], Callable[[Exception], exceptions.APIException]] = {}


def map_exception(exception_class: type[Exception], to: Callable[[Exception], exceptions.APIException]) -> None:
    """Declare once how an app's own exception becomes an API error, e.g.
    ``map_exception(EmbeddingRegistryError, lambda exc: ServiceUnavailable(f"registry: {exc}"))``."""
    _DOMAIN_EXCEPTIONS[exception_class] = to


def request_too_large_detail() -> str:
    return (f"Request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
            "(DATA_UPLOAD_MAX_MEMORY_SIZE); upload big imports as a file")


def _flatten(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        messages = []
        for field, value in detail.items():
            name = f"{prefix}{field}" if field != "non_field_errors" else prefix.rstrip(".")
            messages.extend(_flatten(value, f"{name}." if name else ""))
        return messages
    if isinstance(detail, list):
        return [message for item in detail for message in _flatten(item, prefix)]
    label = prefix.rstrip(".")
    return [f"{label}: {detail}" if label else str(detail)]


def as_api_exception(exc: Exception, view=None) -> Exception:
    """The DRF exception a raised error stands for (``exc`` itself when DRF already knows it)."""
    for exception_class, convert in _DOMAIN_EXCEPTIONS.items():
        if isinstance(exc, exception_class):
            return convert(exc)
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound(getattr(view, "not_found_detail", None) or DEFAULT_NOT_FOUND_DETAIL)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(request_too_large_detail())
    if isinstance(exc, SuspiciousOperation):
        # Too many fields or files in a form body: Django's message says which limit.
        return exceptions.ParseError(str(exc) or "Malformed request")
    return exc


def exception_handler(exc, context):
    """DRF's ``EXCEPTION_HANDLER``: every API error is ``{"detail": str}`` (+ ``errors`` for fields)."""
    exc = as_api_exception(exc, context.get("view"))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": join_messages(_flatten(exc.detail)) or "Invalid input.", "errors": exc.detail}
    elif not (isinstance(response.data, dict) and "detail" in response.data):
        response.data = {"detail": join_messages(_flatten(response.data))}
    return response
