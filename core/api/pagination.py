"""Paginated lists: ``?limit=`` and ``?offset=`` with a maximum page size, refused when out of range.

DRF's ``LimitOffsetPagination`` has no maximum unless ``max_limit`` is set (so
``?limit=1000000000`` returned the whole corpus), silently replaces a negative or empty
limit with the default, and passes an offset beyond ``bigint`` to PostgreSQL. Here both are
validated (400 naming the parameter) and documented with their bounds.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import pagination, serializers

from core.api.query_params import parse_query

MAX_PAGE_SIZE = 1000
# OFFSET takes a bigint; a page this far out is empty long before, so a smaller bound costs nothing.
MAX_OFFSET = 2**31 - 1


class PageQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False,
                                     help_text=f"page size (default {settings.REST_FRAMEWORK['PAGE_SIZE']}, "
                                               f"at most {MAX_PAGE_SIZE})")
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False,
                                      help_text="items to skip (default 0)")


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    max_limit = MAX_PAGE_SIZE

    def get_limit(self, request):
        # DRF asks for the limit first, then the offset: validate the query once.
        self.page_query = parse_query(request, PageQuery)
        return self.page_query.get("limit", self.default_limit)

    def get_offset(self, request):
        return self.page_query.get("offset", 0)

    def get_schema_operation_parameters(self, view):
        fields = PageQuery().fields
        return [
            {
                "name": "limit", "required": False, "in": "query", "description": fields["limit"].help_text,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": self.default_limit},
            },
            {
                "name": "offset", "required": False, "in": "query", "description": fields["offset"].help_text,
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
            },
        ]
