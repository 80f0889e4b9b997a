"""core.admin_display: what every app's admin shows for long text, JSON and history rows."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from core.admin_display import (
    LIST_ITEMS_SHOWN,
    ReadOnlyAdminMixin,
    pretty_json,
    readable_json,
    titled_filter,
    truncated,
    yes_no,
)


def test_short_text_is_kept_whole_and_long_text_cut_by_display_columns():
    assert truncated("short", limit=10) == "short"
    assert truncated(None) == ""
    assert truncated("a" * 10, limit=10) == "a" * 10

    cut = truncated("abcdefghijkl", limit=6)
    assert cut == '<span title="abcdefghijkl">abcde…</span>'
    # Chinese characters are two columns wide: 3 fit in 7 columns with the ellipsis.
    assert truncated("视频标题很长很长", limit=7) == '<span title="视频标题很长很长">视频标…</span>'


def test_truncated_text_is_escaped():
    assert truncated("<b>" * 10, limit=5) == '<span title="{0}">&lt;b&gt;&lt;…</span>'.format("&lt;b&gt;" * 10)


def test_json_reads_as_nested_lists_with_long_lists_counted():
    assert readable_json({}) == "—" and readable_json([]) == "—"
    assert readable_json({"seed": 7, "ratio": 0.25, "on": True, "off": None}) == (
        '<ul class="readable-json"><li><strong>seed</strong>: 7</li><li><strong>ratio</strong>: 0.25</li>'
        "<li><strong>on</strong>: yes</li><li><strong>off</strong>: —</li></ul>"
    )
    many = list(range(LIST_ITEMS_SHOWN + 5))
    assert readable_json(many).endswith(f"{LIST_ITEMS_SHOWN - 1}, … (5 more, {LIST_ITEMS_SHOWN + 5} in all)")
    assert readable_json([{"a": "<x>"}]) == (
        '<ol class="readable-json"><li><ul class="readable-json"><li><strong>a</strong>: &lt;x&gt;</li></ul></li></ol>'
    )


def test_pretty_json_keeps_every_key_escaped_and_unicode_readable():
    assert pretty_json({"标题": "<i>"}) == '<pre class="pretty-json">{\n  &quot;标题&quot;: &quot;&lt;i&gt;&quot;\n}</pre>'


def test_yes_no():
    assert (yes_no(True), yes_no(False), yes_no(None)) == ("yes", "no", "—")


@pytest.mark.django_db
def test_a_titled_filter_is_djangos_own_filter_under_a_readable_title():
    user_model = get_user_model()
    model_admin = admin.site._registry[user_model]
    request = RequestFactory().get("/")
    field = user_model._meta.get_field("is_staff")

    spec = titled_filter("is staff?")(field, request, {}, user_model, model_admin, "is_staff")

    assert isinstance(spec, admin.BooleanFieldListFilter)
    assert spec.title == "is staff?"
    based = titled_filter("staff", admin.AllValuesFieldListFilter)(field, request, {}, user_model, model_admin, "is_staff")
    assert isinstance(based, admin.AllValuesFieldListFilter) and based.title == "staff"


def test_history_rows_are_never_added_changed_or_deleted():
    class HistoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
        pass

    history_admin = HistoryAdmin(get_user_model(), admin.site)
    request = RequestFactory().get("/")

    assert not history_admin.has_add_permission(request)
    assert not history_admin.has_change_permission(request)
    assert not history_admin.has_delete_permission(request)
