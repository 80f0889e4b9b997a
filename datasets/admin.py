"""Admin for embeddings, datasets and data jobs: mostly a window, rarely a lever.

Embedding models mirror ``embedding_models.toml`` (edit the file, or use
``manage.py embedding_models``); vectors, frozen versions and job rows are written
by the build services only, so they are read-only here.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from datasets.models import Dataset, DatasetTask, DatasetVersion, Embedding, EmbeddingModel
from labeling.admin import ReadOnlyAdminMixin


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["key", "name", "provider_type", "dimensions", "api_endpoint", "max_tokens", "max_batch_size",
                    "api_key_env", "updated_at"]
    list_filter = ["provider_type", "dimensions"]
    search_fields = ["key", "name"]


@admin.register(Embedding)
class EmbeddingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Never the vector column in the list: thousands of floats per row.
    list_display = ["id", "model", "checksum", "dimensions", "created_at"]
    list_select_related = ["model"]
    list_filter = ["model"]
    search_fields = ["=checksum"]
    fields = ["model", "checksum", "dimensions", "vector_preview", "created_at"]
    readonly_fields = fields
    show_full_result_count = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and (match.url_name or "").endswith("_changelist"):
            queryset = queryset.defer("vector")
        return queryset

    @admin.display(description="vector (first 8 values)")
    def vector_preview(self, embedding):
        values = ", ".join(f"{value:.4f}" for value in list(embedding.vector[:8]))
        return f"[{values}, …] ({embedding.dimensions} values)"


class DatasetVersionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DatasetVersion
    fields = ["number", "status", "embedding_model", "total_records", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]
    extra = 0
    show_change_link = True


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_by", "created_at"]
    list_select_related = ["created_by"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [DatasetVersionInline]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """No add; every field read-only except the description of a version not yet frozen."""

    list_display = ["__str__", "status", "embedding_model", "total_records", "positives", "negatives",
                    "train_count", "val_count", "test_count", "new_embeddings", "reused_embeddings", "created_at"]
    list_select_related = ["dataset", "embedding_model"]
    list_filter = ["status", "embedding_model", "created_at"]
    search_fields = ["=id", "dataset__name", "description"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["id", "dataset", "number", "description", "status", "error", "page_link"]}),
        ("Build request", {"fields": ["embedding_model", "embedding_dimensions", "selection", "requested_aids",
                                      "text_template_version", "train_ratio", "val_ratio", "test_ratio", "seed",
                                      "force_regenerate", "include_inconsistent", "created_by"]}),
        ("Counts", {"fields": ["total_records", "positives", "negatives", "train_count", "val_count", "test_count",
                               "split_counts", "new_embeddings", "reused_embeddings", "inconsistent_excluded",
                               "inconsistent_included", "unlabeled_excluded", "empty_text_excluded",
                               "missing_excluded"]}),
        ("Frozen", {"fields": ["content_hash", "created_at", "frozen_at"]}),
    ]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        fields = [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]
        if obj is not None and not obj.is_ready:
            fields.remove("description")
        return fields

    def has_change_permission(self, request, obj=None):
        # A frozen version opens as a read-only view (no save button).
        if obj is not None and obj.is_ready:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="page")
    def page_link(self, version):
        url = reverse("datasets:version-detail", args=[version.pk])
        return format_html('<a href="{}">open the version page</a>', url)


@admin.register(DatasetTask)
class DatasetTaskAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "type", "status", "current_step", "percentage", "dataset_version", "attempts",
                    "created_at", "started_at", "completed_at"]
    list_select_related = ["dataset_version__dataset"]
    list_filter = ["status", "type", "created_at"]
    search_fields = ["=id", "=celery_task_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
