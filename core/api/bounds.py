"""Numeric bounds of the database, so an out-of-range number is a 400 and never a ``DataError``.

PostgreSQL's ``bigint`` holds what Django's ``BigIntegerField`` and ``BigAutoField`` store
(aids, seeds, ids); a larger number in a filter or a row fails in the driver. Serializer
integer fields of the API use ``bigint_field`` (or tighter bounds of their own), and the
JSON parser refuses larger integer literals outright.
"""

from rest_framework import serializers

MAX_BIGINT = 2**63 - 1
MIN_BIGINT = -(2**63)


def bigint_field(*, min_value: int = MIN_BIGINT, max_value: int = MAX_BIGINT, **kwargs) -> serializers.IntegerField:
    """An ``IntegerField`` that never lets a number past PostgreSQL's ``bigint``."""
    return serializers.IntegerField(min_value=max(min_value, MIN_BIGINT), max_value=min(max_value, MAX_BIGINT),
                                    **kwargs)
