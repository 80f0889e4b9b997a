import functools

from django.contrib import admin
from django.urls import path

from labeling.admin_import import import_view
from labeling.models import Label, Review, Video


class ReadOnlyAdminMixin:
    """Labels and reviews are history: visible, never edited or deleted in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LabelInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Label
    fields = ["created_at", "user", "value", "source", "retracted_at"]
    readonly_fields = fields
    ordering = ["-created_at"]
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


class ReviewInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Review
    fields = ["created_at", "reviewer", "value", "note"]
    readonly_fields = fields
    ordering = ["-created_at"]
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("reviewer")


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ["aid", "bvid", "title", "uploader_name", "published_at", "consensus_value", "votes", "inconsistent"]
    list_select_related = ["consensus"]
    search_fields = ["=aid", "=bvid", "title"]
    list_filter = ["consensus__value", "consensus__is_inconsistent", "published_at"]
    readonly_fields = ["created_at", "updated_at", "raw"]
    inlines = [ReviewInline, LabelInline]
    fieldsets = [
        (None, {"fields": ["aid", "bvid", "title", "description", "tags"]}),
        ("Uploader", {"fields": ["uploader_mid", "uploader_name"]}),
        ("Media", {"fields": ["published_at", "duration", "cover_url"]}),
        ("Provenance", {"classes": ["collapse"], "fields": ["raw", "created_at", "updated_at"]}),
    ]
    show_full_result_count = False

    def get_urls(self):
        upload = self.admin_site.admin_view(functools.partial(import_view, self))
        return [path("import/", upload, name="labeling_video_import"), *super().get_urls()]

    @admin.display(description="consensus", boolean=True, ordering="consensus__value")
    def consensus_value(self, video):
        return video.consensus.value

    @admin.display(description="votes (yes/no)")
    def votes(self, video):
        return f"{video.consensus.positive_votes}/{video.consensus.negative_votes}"

    @admin.display(description="inconsistent", boolean=True)
    def inconsistent(self, video):
        return video.consensus.is_inconsistent


@admin.register(Label)
class LabelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "video", "user", "value", "source", "retracted_at"]
    list_select_related = ["video", "user"]
    list_filter = ["value", "source", "user", "created_at", ("retracted_at", admin.EmptyFieldListFilter)]
    search_fields = ["=video__aid", "=video__bvid", "video__title"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "video", "reviewer", "value", "note"]
    list_select_related = ["video", "reviewer"]
    list_filter = ["value", "reviewer", "created_at"]
    search_fields = ["=video__aid", "=video__bvid", "video__title", "note"]
    date_hierarchy = "created_at"
