"""The OpenAPI schema describes every answer the server can give, errors included.

``AutoSchema`` (DRF's ``DEFAULT_SCHEMA_CLASS``) adds the error responses that the shared
machinery produces to every operation, each with the ``{"detail": ...}`` body, so a view
documents only what is its own (409 for a version still building, 503 for a broken
registry):

- 400 wherever there is input (a body, query or path parameters): ``core.api.parsers``
  and the serializers refuse bad input;
- 401 and 403 wherever authentication is required (403 also for the role checks and CSRF);
- 404 wherever the path has a parameter (an unknown id);
- 413 and 415 wherever there is a body (over ``DATA_UPLOAD_MAX_MEMORY_SIZE``; not JSON).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions, serializers

ERROR_DESCRIPTIONS = {
    "400": "Bad input: `detail` names the field; nothing was written",
    "401": "No credentials, or invalid ones",
    "403": "Not allowed for this user's role, or a cross-site session request without a CSRF token",
    "404": "Not found",
    "413": "Request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE",
    "415": "The body is not in a supported media type",
}


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField(help_text="what went wrong, readable as it is")
    errors = serializers.JSONField(required=False, help_text="validation errors by field (400 only)")

    class Meta:
        ref_name = "Error"


def _needs_authentication(view) -> bool:
    return not any(
        isinstance(permission, type) and issubclass(permission, permissions.AllowAny)
        for permission in getattr(view, "permission_classes", [])
    )


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        codes = set()
        if has_body or parameters:
            codes.add("400")
        if _needs_authentication(self.view):
            codes |= {"401", "403"}
        if any(parameter.get("in") == "path" for parameter in parameters):
            codes.add("404")
        if has_body:
            codes |= {"413", "415"}
        error_reference = self.resolve_serializer(ErrorOutput, "response").ref
        responses = operation["responses"]
        for code, response in responses.items():
            # A status a view documents with a description only gets the error body too.
            if code >= "400" and "content" not in response:
                response["content"] = {"application/json": {"schema": error_reference}}
        for code in sorted(codes - set(responses)):
            responses[code] = {
                "content": {"application/json": {"schema": error_reference}},
                "description": ERROR_DESCRIPTIONS[code],
            }
        operation["responses"] = dict(sorted(responses.items()))
        return operation


class SameOriginSessionScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.authentication.SameOriginSessionAuthentication"
    name = "sessionAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
            "description": "Browser session. Unsafe methods need no CSRF token when the request's Origin "
                           "(or Referer) is this server or one of CSRF_TRUSTED_ORIGINS; otherwise they need one.",
        }
