"""The experiments REST API under ``/api/v1/experiments`` (``views``, ``serializers``, ``urls``).

Reads need any team role, writes ``can_run_experiments`` (admins); errors are
``core.api``'s ``{"detail": ..., "errors": {field: [...]}}`` with the request's field names.
"""
