"""The labeling guideline: admin-written Markdown, versioned append-only. The card shows the
current version beside it, and every label or pass written from the card records the
version its labeler was shown."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from core.roles import ADMINS, user_has_role
from labeling.models import Guideline

MAX_BODY_LENGTH = 50_000
MAX_CHANGE_NOTE_LENGTH = Guideline._meta.get_field("change_note").max_length
# Serializes publishing: two admins saving at once get versions N+1 and N+2, never a
# unique-constraint error. Any constant; it only has to differ from other advisory keys.
_PUBLISH_LOCK_KEY = 0x6775_6964  # "guid"

# CommonMark with raw HTML off: a "<script>" in the text is shown as text, never run.
# markdown-it's link validation also refuses javascript:/vbscript:/data: (except images) URLs.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


@transaction.atomic
def guideline_publish(*, body: str, change_note: str = "", user) -> Guideline:
    """Publish a new version of the guideline (admins only): version = latest + 1."""
    if not user_has_role(user, ADMINS):
        raise PermissionDenied("only admins can edit the labeling guideline")
    body = (body or "").strip()
    change_note = (change_note or "").strip()
    if not body:
        raise ValidationError({"body": "the guideline cannot be empty"})
    if len(body) > MAX_BODY_LENGTH:
        raise ValidationError({"body": f"at most {MAX_BODY_LENGTH} characters (got {len(body)})"})
    if len(change_note) > MAX_CHANGE_NOTE_LENGTH:
        raise ValidationError({"change_note": f"at most {MAX_CHANGE_NOTE_LENGTH} characters (got {len(change_note)})"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PUBLISH_LOCK_KEY])
    latest = Guideline.objects.aggregate(latest=Max("version"))["latest"] or 0
    return Guideline.objects.create(version=latest + 1, body=body, change_note=change_note, created_by=user)


def guideline_current() -> Guideline | None:
    """The latest published version (None: no guideline yet)."""
    return Guideline.objects.order_by("-version").first()


def guideline_by_version(version: int) -> Guideline | None:
    return Guideline.objects.filter(version=version).select_related("created_by").first()


def guideline_history():
    """Every version, newest first, without their bodies (the page lists them)."""
    return Guideline.objects.order_by("-version").select_related("created_by").defer("body")


def guideline_for_card(posted_id) -> Guideline | None:
    """The version a card was shown with (its hidden ``guideline`` field), or the current
    one when the card had none or names no version that exists."""
    try:
        shown = int(posted_id) if posted_id not in (None, "") else None
    except (TypeError, ValueError):
        shown = None
    guideline = Guideline.objects.filter(pk=shown).first() if shown is not None else None
    return guideline or guideline_current()


def guideline_html(guideline: Guideline | None) -> SafeString:
    """The guideline's Markdown as HTML; raw HTML in the text is escaped."""
    if guideline is None:
        return mark_safe("")
    return mark_safe(_MARKDOWN.render(guideline.body))  # noqa: S308 — markdown-it escapes raw HTML (html=False)
