"""Query strings read through serializers: one definition validates and documents them.

A view declares its query parameters as a ``Serializer`` and reads them with
``parse_query``; the same class goes into ``extend_schema(parameters=[...])`` so the
OpenAPI schema carries the bounds the server enforces (``minimum``/``maximum``, enums,
``required``). DRF's own ``QueryDict`` handling would quietly turn ``?limit=`` into "use
the default"; here a parameter that is present must be valid: ``?limit=`` and
``?offset=null`` are 400s, integers are bounded (no ``bigint out of range``), and
``CharField``'s validators refuse NUL characters (no ``DataError``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def parse_query(request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The validated query parameters (the last value of a repeated one); a ``ValidationError`` (400) otherwise."""
    params = request.query_params
    data = {name: params[name] for name in serializer_class().fields if name in params}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data

