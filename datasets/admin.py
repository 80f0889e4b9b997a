"""Admin for embeddings, datasets and data jobs: mostly a window, rarely a lever.

Embedding models mirror ``embedding_models.toml`` (edit the file, or use
``manage.py embedding_models``); vectors, frozen versions and job rows are written
by the build services only, so they are read-only here.
"""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from datasets import services
from datasets.models import Dataset, DatasetTask, DatasetVersion, DatasetVersionItem, Embedding, EmbeddingModel
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

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("embedding_model").defer("requested_aids")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Name and description are editable; deleting a dataset would cascade to its
    frozen versions, so it is disabled (delete versions one by one instead)."""

    list_display = ["name", "description", "created_by", "created_at"]
    list_select_related = ["created_by"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [DatasetVersionInline]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are written by the build services only, so the admin never
    saves a row (a whole-row save could overwrite what a running build just wrote).
    Deleting goes through ``services.dataset_version_delete``, which refuses a version
    being built or still in use (the refusal is shown as a message)."""

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
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]]
    show_full_result_count = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and (match.url_name or "").endswith("_changelist"):
            queryset = queryset.defer("requested_aids")  # the detail page shows it
        return queryset

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_deleted_objects(self, objs, request):
        """A summary instead of Django's list of every cascaded item (thousands per version)."""
        versions = list(objs)
        items = DatasetVersionItem.objects.filter(version__in=[version.pk for version in versions]).count()
        model_count = {DatasetVersion._meta.verbose_name_plural: len(versions),
                       DatasetVersionItem._meta.verbose_name_plural: items}
        return [str(version) for version in versions], model_count, set(), []

    def delete_model(self, request, obj):
        """Through ``services.dataset_version_delete``; a refusal becomes an error message."""
        try:
            services.dataset_version_delete(obj.pk)
        except DatasetVersion.DoesNotExist:
            return
        except ValidationError as error:
            request._dataset_version_delete_refused = True
            self.message_user(request, f"{obj}: {'; '.join(error.messages)}", messages.ERROR)

    def delete_queryset(self, request, queryset):
        for version in queryset.select_related("dataset").defer("requested_aids"):
            self.delete_model(request, version)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_dataset_version_delete_refused", False):
            return HttpResponseRedirect(reverse("admin:datasets_datasetversion_change", args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)

    def get_actions(self, request):
        # The bulk action would report "Successfully deleted" even for refused versions.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

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
