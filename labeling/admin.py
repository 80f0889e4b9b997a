"""The admin as a data-review tool: find a video by any id people paste, see its consensus
at a glance, read its whole history (human and model labels, reviews) newest first.

Every change list costs a fixed number of queries: the consensus comes from the
``labeling_videoconsensus`` view by ``select_related``, a label's "counts as a vote" from
an ``EXISTS`` on the effective-label view, never from a query per row.
"""

from __future__ import annotations

import functools
import re

from django.contrib import admin
from django.contrib.admin.widgets import AdminTextareaWidget
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin_display import ReadOnlyAdminMixin, pretty_json, titled_filter, truncated, yes_no
from core.roles import can_write_machine_labels
from labeling import admin_label_import
from labeling.admin_import import import_view
from labeling.models import VOTING_SOURCES, BulkLabelOperation, EffectiveLabel, Guideline, Label, LabelSource, Review, Video
from labeling.selectors import video_reference_condition

# The admin's left navigation takes 300 px of a 1366 px screen (with the filters' 240 px,
# a list keeps ~800 px and the consensus columns fell off the right). The home page and the
# breadcrumbs already navigate, so the review surface gives the width to the data.
admin.site.enable_nav_sidebar = False

_USER_ID = re.compile(r"[0-9]{1,18}")
# Several ids pasted at once ("av1 av2, BV1…"): each one is a video reference.
_SEARCH_TERM_SEPARATORS = re.compile(r"[\s,;]+")


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"


class VideoReferenceSearchMixin:
    """Search that understands video ids: "av104902138", "BV1xx411c7mD", a bare aid, a
    bilibili.com link, or several of them; anything else is the ordinary ``search_fields``
    search. A bare number also matches titles containing it."""

    video_reference_prefix = ""  # "video__" where the video is a relation

    def get_search_results(self, request, queryset, search_term):
        search_term = search_term.replace("\x00", "")  # PostgreSQL text cannot hold NUL: a 500, not a search
        terms = [term for term in _SEARCH_TERM_SEPARATORS.split(search_term.strip()) if term]
        references = [video_reference_condition(term, prefix=self.video_reference_prefix) for term in terms]
        if not terms or None in references:
            return super().get_search_results(request, queryset, search_term)
        matched = queryset.filter(functools.reduce(Q.__or__, references))
        if len(terms) == 1 and terms[0].isdigit():
            text_matches, may_have_duplicates = super().get_search_results(request, queryset, search_term)
            return matched | text_matches, may_have_duplicates
        return matched, False


def _is_effective():
    """Whether a label row is its user's effective label (the vote that counts). The
    predicate names ``video`` and ``user`` so PostgreSQL pushes it into the view's
    ``DISTINCT ON (video_id, user_id)`` instead of computing the whole view."""
    return Exists(
        EffectiveLabel.objects.filter(video=OuterRef("video"), user=OuterRef("user"), label=OuterRef("pk"))
    )


def _vote_status(label) -> str:
    if not label.is_vote:
        return "never a vote (model label)"
    if label.retracted_at:
        return f"undone {_when(label.retracted_at)}"
    if getattr(label, "is_effective", False):
        return format_html("<strong>{}</strong>", "counts")
    return "replaced by a later answer"


# ------------------------------------------------------------------ video filters


class ConsensusLabelFilter(admin.SimpleListFilter):
    title = "consensus label"
    parameter_name = "consensus"

    def lookups(self, request, model_admin):
        return [("yes", "yes"), ("no", "no"), ("tie", "tie (no label)"), ("unlabeled", "unlabeled")]

    def queryset(self, request, queryset):
        conditions = {
            "yes": Q(consensus__value=True),
            "no": Q(consensus__value=False),
            "tie": Q(consensus__value__isnull=True, consensus__is_tie=True),
            "unlabeled": Q(consensus__total_votes=0),
        }
        return queryset.filter(conditions[self.value()]) if self.value() in conditions else queryset


class OpenConflictFilter(admin.SimpleListFilter):
    title = "open conflict"
    parameter_name = "conflict"

    def lookups(self, request, model_admin):
        return [("yes", "yes: labels disagree, no review"), ("no", "no")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(consensus__is_inconsistent=self.value() == "yes")
        return queryset


class ReviewedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return [("yes", "reviewed"), ("no", "not reviewed")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(consensus__review__isnull=self.value() == "no")
        return queryset


class HumanVotesFilter(admin.SimpleListFilter):
    title = "number of human votes"
    parameter_name = "votes"

    def lookups(self, request, model_admin):
        return [("0", "none"), ("1", "1"), ("2", "2"), ("3+", "3 or more")]

    def queryset(self, request, queryset):
        if self.value() == "3+":
            return queryset.filter(consensus__total_votes__gte=3)
        if self.value() in ("0", "1", "2"):
            return queryset.filter(consensus__total_votes=int(self.value()))
        return queryset


class LabeledByFilter(admin.SimpleListFilter):
    """Videos on which a person's answer counts (their effective label)."""

    title = "labeled by"
    parameter_name = "labeler"

    def lookups(self, request, model_admin):
        people = get_user_model().objects.filter(
            Exists(Label.objects.filter(user=OuterRef("pk"), source__in=VOTING_SOURCES, retracted_at__isnull=True))
        ).order_by("username")
        return [(str(user.pk), user.get_username()) for user in people]

    def queryset(self, request, queryset):
        if not _USER_ID.fullmatch(self.value() or ""):
            return queryset
        return queryset.filter(Exists(EffectiveLabel.objects.filter(video=OuterRef("pk"), user=int(self.value()))))


class ModelLabelsFilter(admin.SimpleListFilter):
    title = "model labels"
    parameter_name = "model_labels"

    def lookups(self, request, model_admin):
        return [("yes", "has model labels"), ("no", "none")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        has_model_labels = Exists(Label.objects.filter(video=OuterRef("pk"), source=LabelSource.MODEL))
        return queryset.filter(has_model_labels if self.value() == "yes" else ~has_model_labels)


# ------------------------------------------------------------------ inlines (history)


HISTORY_INLINE_TEMPLATE = "admin/labeling/edit_inline/history_tabular.html"


class LabelInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Every label on the video, newest first, one line each: "ann: yes (human) at …"
    (``Label.__str__``), then whether it counts."""

    model = Label
    template = HISTORY_INLINE_TEMPLATE
    verbose_name_plural = "labels (history, newest first)"
    fields = ["vote_status"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").annotate(is_effective=_is_effective())

    @admin.display(description="counts as a vote?")
    def vote_status(self, label):
        return _vote_status(label)


class ReviewInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Review
    template = HISTORY_INLINE_TEMPLATE
    verbose_name_plural = "reviews (newest first; the newest decides)"
    fields = ["note"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("reviewer")


# ------------------------------------------------------------------ videos


def consensus_summary(consensus) -> str:
    """"yes · 3:1 · 75%", "tie · 1:1 · open conflict", "unlabeled": one short cell."""
    if consensus.total_votes == 0 and consensus.review_id is None:
        return format_html('<span class="consensus consensus-none">{}</span>', "unlabeled")
    if consensus.value is None:
        answer, css = "tie", "consensus-tie"
    else:
        answer, css = yes_no(consensus.value), f"consensus-{yes_no(consensus.value)}"
    agreement = f" · {consensus.agreement:.0%}" if consensus.agreement is not None else ""
    state = ""
    if consensus.is_inconsistent:
        state = format_html(' · <span class="conflict">{}</span>', "open conflict")
    elif consensus.review_id is not None:
        state = format_html(' · <span class="reviewed">{}</span>', "reviewed")
    return format_html(
        '<span class="consensus {}">{}</span> <span class="votes" title="{}">{}:{}</span>{}{}',
        css, answer, "human votes yes:no", consensus.positive_votes, consensus.negative_votes, agreement, state,
    )


VIDEO_TEXTAREA_ROWS = {"title": 2, "description": 4, "tags": 2}


@admin.register(Video)
class VideoAdmin(VideoReferenceSearchMixin, admin.ModelAdmin):
    list_display = ["video", "short_title", "uploader", "published", "consensus_column", "last_labeled"]
    list_select_related = ["consensus"]
    search_fields = ["title", "tags", "uploader_name"]
    search_help_text = "An aid (104902138 or av104902138), a BV id, a bilibili.com link, several ids, or words of the title, tags or uploader."
    list_filter = [
        ConsensusLabelFilter, OpenConflictFilter, ReviewedFilter, HumanVotesFilter, LabeledByFilter, ModelLabelsFilter,
        ("published_at", titled_filter("publication date")),
    ]
    list_per_page = 50
    # Counts per filter choice would each compute the consensus of the whole corpus.
    show_facets = admin.ShowFacets.NEVER
    inlines = [ReviewInline, LabelInline]
    readonly_fields = ["consensus_detail", "review_detail", "last_labeled_detail", "links", "raw_record",
                       "created_at", "updated_at"]
    show_full_result_count = False

    def get_fieldsets(self, request, obj=None):
        video = (None, {"fields": ["aid", "bvid", "title", "description", "tags"]})
        uploader = ("Uploader and media", {"fields": [("uploader_name", "uploader_mid"), ("published_at", "duration"),
                                                      "cover_url"]})
        if obj is None:
            return [video, uploader]
        consensus = ("Consensus (human votes only; the latest review decides)", {
            "fields": ["consensus_detail", "review_detail", "last_labeled_detail", "links"],
        })
        provenance = ("Provenance", {"classes": ["collapse"], "fields": ["raw_record", "created_at", "updated_at"]})
        return [consensus, video, uploader, provenance]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("consensus")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # Short text areas, so the history below the form is not three screens down.
        if db_field.name in VIDEO_TEXTAREA_ROWS:
            kwargs["widget"] = AdminTextareaWidget(attrs={"rows": VIDEO_TEXTAREA_ROWS[db_field.name]})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_urls(self):
        upload = self.admin_site.admin_view(functools.partial(import_view, self))
        return [path("import/", upload, name="labeling_video_import"), *super().get_urls()]

    # --- change list columns

    @admin.display(description="video", ordering="aid")
    def video(self, video):
        return format_html('av{}<br><small class="bvid">{}</small>', video.aid, video.bvid) if video.bvid else f"av{video.aid}"

    @admin.display(description="title", ordering="title")
    def short_title(self, video):
        return truncated(video.title)

    @admin.display(description="uploader", ordering="uploader_name")
    def uploader(self, video):
        return truncated(video.uploader_name, 20)

    @admin.display(description="published", ordering="published_at")
    def published(self, video):
        return timezone.localtime(video.published_at).strftime("%Y-%m-%d") if video.published_at else "—"

    @admin.display(description="consensus (yes:no · agreement)", ordering="consensus__agreement")
    def consensus_column(self, video):
        return consensus_summary(video.consensus)

    @admin.display(description="last labeled", ordering="consensus__last_labeled_at")
    def last_labeled(self, video):
        return _when(video.consensus.last_labeled_at)

    # --- change view

    @admin.display(description="consensus")
    def consensus_detail(self, video):
        return consensus_summary(video.consensus)

    @admin.display(description="review")
    def review_detail(self, video):
        consensus = video.consensus
        if consensus.review_id is None:
            return "open conflict: needs a review" if consensus.is_inconsistent else "none"
        return f"{yes_no(consensus.review_value)} (overrides the votes)"

    @admin.display(description="last labeled")
    def last_labeled_detail(self, video):
        return _when(video.consensus.last_labeled_at)

    @admin.display(description="see also")
    def links(self, video):
        return format_html(
            '<a href="{}">labeling history page</a> · <a href="{}?q=av{}">all its labels</a> · '
            '<a href="{}" target="_blank" rel="noopener noreferrer">on Bilibili</a>',
            reverse("labeling:video-detail", args=[video.aid]),
            reverse("admin:labeling_label_changelist"), video.aid,
            video.bilibili_url,
        )

    @admin.display(description="imported record")
    def raw_record(self, video):
        return pretty_json(video.raw)


# ------------------------------------------------------------------ labels and reviews


class UndoneFilter(admin.SimpleListFilter):
    title = "undone"
    parameter_name = "undone"

    def lookups(self, request, model_admin):
        return [("no", "in force"), ("yes", "undone")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(retracted_at__isnull=self.value() == "no")
        return queryset


@admin.register(Label)
class LabelAdmin(VideoReferenceSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    video_reference_prefix = "video__"
    list_display = ["created_at", "video_link", "user", "answer", "source", "vote_status"]
    list_select_related = ["video", "user"]
    list_filter = [
        ("value", titled_filter("answer")), ("source", titled_filter("source")), UndoneFilter,
        ("user", titled_filter("labeler", admin.RelatedOnlyFieldListFilter)), ("created_at", titled_filter("date")),
    ]
    search_fields = ["video__title"]
    search_help_text = "A video's aid (av…), BV id or link, or words of its title."
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    fields = ["video_link", "user", "answer", "source", "vote_status", "created_at", "retracted_at"]
    readonly_fields = fields
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(is_effective=_is_effective())

    def get_urls(self):
        upload = self.admin_site.admin_view(functools.partial(admin_label_import.import_view, self))
        return [path("import/", upload, name="labeling_label_import"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        # Labels are never added here one by one; the "Import labels" button replaces "Add".
        extra_context = {**(extra_context or {}), "can_import_labels": can_write_machine_labels(request.user)}
        return super().changelist_view(request, extra_context)

    @admin.display(description="video", ordering="video__aid")
    def video_link(self, label):
        url = reverse("admin:labeling_video_change", args=[label.video_id])
        return format_html('<a href="{}">av{}</a> {}', url, label.video.aid, truncated(label.video.title, 40))

    @admin.display(description="answer", ordering="value")
    def answer(self, label):
        return yes_no(label.value)

    @admin.display(description="counts as a vote?")
    def vote_status(self, label):
        return _vote_status(label)


@admin.register(Review)
class ReviewAdmin(VideoReferenceSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    video_reference_prefix = "video__"
    list_display = ["created_at", "video_link", "reviewer", "answer", "short_note"]
    list_select_related = ["video", "reviewer"]
    list_filter = [("value", titled_filter("answer")),
                   ("reviewer", titled_filter("reviewer", admin.RelatedOnlyFieldListFilter)),
                   ("created_at", titled_filter("date"))]
    search_fields = ["video__title", "note"]
    search_help_text = "A video's aid (av…), BV id or link, or words of its title or of the note."
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    fields = ["video_link", "reviewer", "answer", "note", "created_at"]
    readonly_fields = fields

    @admin.display(description="video", ordering="video__aid")
    def video_link(self, review):
        url = reverse("admin:labeling_video_change", args=[review.video_id])
        return format_html('<a href="{}">av{}</a> {}', url, review.video.aid, truncated(review.video.title, 40))

    @admin.display(description="answer", ordering="value")
    def answer(self, review):
        return yes_no(review.value)

    @admin.display(description="note")
    def short_note(self, review):
        return truncated(review.note, 60)


@admin.register(Guideline)
class GuidelineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The guideline's versions, read-only: a new version is published from the guideline
    page (labeling.guidelines.guideline_publish), never edited in place."""

    list_display = ("version", "change_note", "created_by", "created_at")
    fields = ("version", "body", "change_note", "created_by", "created_at")
    readonly_fields = fields
    list_select_related = ("created_by",)


@admin.register(BulkLabelOperation)
class BulkLabelOperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Bulk labelings, read-only: the audit of who labeled which filtered set (written by
    the bulk label page or API, labeling.bulk_labels)."""

    list_display = ("id", "created_by", "answer", "description", "previewed_count", "labels_written", "created_at")
    fields = ("created_by", "value", "filter", "description", "previewed_count", "labels_written", "created_at")
    readonly_fields = fields
    list_select_related = ("created_by",)
    ordering = ["-created_at", "-id"]

    @admin.display(description="answer", ordering="value")
    def answer(self, operation):
        return yes_no(operation.value)
