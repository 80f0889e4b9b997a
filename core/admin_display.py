"""Rendering helpers and mixins shared by every app's admin (the data-review surface).

History rows kept read-only, filter titles that read as questions, long text cut to fit
a 1366 px screen, and JSON shown as a readable list instead of a Python ``repr``.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# A title or name wider than this many columns is cut in change lists (the full text is its
# tooltip). Columns, not characters: a Chinese or Japanese character is two columns wide.
LIST_TEXT_COLUMNS = 60
# Lists inside JSON show this many items, then how many more.
LIST_ITEMS_SHOWN = 20


class ReadOnlyAdminMixin:
    """Rows that are history (labels, reviews, vectors, job rows): visible, never added,
    edited or deleted in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def titled_filter(title: str, base: type[admin.FieldListFilter] | None = None) -> type[admin.FieldListFilter]:
    """``("field", titled_filter("open conflict"))`` in ``list_filter``: Django's own filter
    for the field's type (boolean, choices, related, date…), or ``base``, under a readable
    title instead of the field's verbose name ("By is inconsistent")."""

    class TitledFieldListFilter(admin.FieldListFilter):
        def __new__(cls, field, request, params, model, model_admin, field_path):
            if base is None:
                spec = admin.FieldListFilter.create(field, request, params, model, model_admin, field_path)
            else:
                spec = base(field, request, params, model, model_admin, field_path)
            spec.title = title
            return spec

    TitledFieldListFilter.__name__ = f"TitledFieldListFilter[{title}]"
    return TitledFieldListFilter


def _columns(character: str) -> int:
    return 2 if unicodedata.east_asian_width(character) in ("W", "F") else 1


def truncated(text: str | None, limit: int = LIST_TEXT_COLUMNS) -> SafeString | str:
    """``text`` cut to ``limit`` display columns with an ellipsis; the whole text in its tooltip."""
    text = text or ""
    if sum(map(_columns, text)) <= limit:
        return text
    kept, width = 0, 0
    while width + _columns(text[kept]) <= limit - 1:  # one column for the ellipsis
        width += _columns(text[kept])
        kept += 1
    return format_html('<span title="{}">{}…</span>', text, text[:kept].rstrip())


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def readable_json(value: Any) -> SafeString | str:
    """A JSON value as nested ``key: value`` lists (long lists cut, counted)."""
    if isinstance(value, dict):
        if not value:
            return "—"
        items = format_html_join(
            "", "<li><strong>{}</strong>: {}</li>", ((key, readable_json(item)) for key, item in value.items())
        )
        return format_html('<ul class="readable-json">{}</ul>', items)
    if isinstance(value, list):
        if not value:
            return "—"
        if all(not isinstance(item, (dict, list)) for item in value):
            shown = ", ".join(_scalar(item) for item in value[:LIST_ITEMS_SHOWN])
            more = len(value) - LIST_ITEMS_SHOWN
            return f"{shown}, … ({more} more, {len(value)} in all)" if more > 0 else shown
        return format_html('<ol class="readable-json">{}</ol>', format_html_join(
            "", "<li>{}</li>", ((readable_json(item),) for item in value[:LIST_ITEMS_SHOWN])
        ))
    return _scalar(value)


def pretty_json(value: Any) -> SafeString:
    """The exact JSON, indented (for provenance records, where every key matters)."""
    return format_html('<pre class="pretty-json">{}</pre>', json.dumps(value, ensure_ascii=False, indent=2))


def yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")

