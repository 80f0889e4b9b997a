"""The API plumbing every app's REST views share: parsing, bounds, errors, authentication, schema.

One place for each cause of a bad answer: the JSON parser bounds nesting and refuses text
PostgreSQL cannot store, query strings are read through serializers with explicit bounds,
pagination has a maximum page size, every error becomes ``{"detail": "..."}`` in one
exception handler, and unknown paths under the API prefixes answer a JSON 404.
"""
