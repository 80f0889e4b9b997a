"""Admin for embeddings, datasets and data jobs: mostly a window, rarely a lever.

Embedding models mirror ``embedding_models.toml`` (edit the file, or use
``manage.py embedding_models``); vectors, frozen versions and job rows are written
by the build services only, so they are read-only here. Lists fit a 1366 px screen
(long names cut, counts combined into one column); JSON fields read as lists.
"""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin_display import ReadOnlyAdminMixin, readable_json, titled_filter, truncated
from datasets import services
from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetVersion,
    DatasetVersionItem,
    Embedding,
    EmbeddingModel,
    Exclusion,
)
from datasets.services.cleaning import exclusions_revert

# requested_aids can hold a whole corpus: pages show this many, then a count.
REQUESTED_AIDS_SHOWN = 50


def _is_changelist(request) -> bool:
    match = request.resolver_match
    return match is not None and (match.url_name or "").endswith("_changelist")


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["key", "short_name", "provider_type", "dimensions", "endpoint", "updated_at"]
    list_filter = [("provider_type", titled_filter("provider")), ("dimensions", titled_filter("dimensions"))]
    search_fields = ["key", "name", "api_endpoint"]
    fieldsets = [
        (None, {"fields": ["key", "name", "provider_type", "dimensions"]}),
        ("Provider", {"fields": ["api_endpoint", "api_key_env", "max_tokens", "max_batch_size"]}),
        ("Mirrored from embedding_models.toml", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="model name", ordering="name")
    def short_name(self, model):
        return truncated(model.name, 40)

    @admin.display(description="endpoint", ordering="api_endpoint")
    def endpoint(self, model):
        return truncated(model.api_endpoint, 40) or "—"


@admin.register(Embedding)
class EmbeddingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Never the vector column in the list: thousands of floats per row.
    list_display = ["id", "model", "short_checksum", "dimensions", "created_at"]
    list_select_related = ["model"]
    list_filter = [("model", titled_filter("embedding model"))]
    search_fields = ["=checksum"]
    search_help_text = "The full sha256 checksum of a composed text."
    fields = ["model", "checksum", "dimensions", "vector_preview", "created_at"]
    readonly_fields = fields
    show_full_result_count = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.defer("vector") if _is_changelist(request) else queryset

    @admin.display(description="checksum", ordering="checksum")
    def short_checksum(self, embedding):
        return format_html('<code title="{}">{}…</code>', embedding.checksum, embedding.checksum[:16])

    @admin.display(description="vector (first 8 values)")
    def vector_preview(self, embedding):
        values = ", ".join(f"{value:.4f}" for value in list(embedding.vector[:8]))
        return f"[{values}, …] ({embedding.dimensions} values)"


class DatasetVersionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DatasetVersion
    verbose_name_plural = "versions (newest first)"
    fields = ["number", "status", "embedding_model", "total_records", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset", "embedding_model").defer("requested_aids")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Name and description are editable; deleting a dataset would cascade to its
    frozen versions, so it is disabled (delete versions one by one instead)."""

    list_display = ["short_name", "short_description", "version_count", "created_by", "created_at"]
    list_select_related = ["created_by"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [DatasetVersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(version_count=Count("versions"))

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="name", ordering="name")
    def short_name(self, dataset):
        return truncated(dataset.name, 50)

    @admin.display(description="description")
    def short_description(self, dataset):
        return truncated(dataset.description, 60)

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, dataset):
        return dataset.version_count


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are written by the build services only, so the admin never
    saves a row (a whole-row save could overwrite what a running build just wrote).
    Deleting goes through ``services.dataset_version_delete``, which refuses a version
    being built or still in use (the refusal is shown as a message)."""

    list_display = ["version", "status", "embedding_model", "records", "splits", "embeddings", "created_at"]
    list_select_related = ["dataset", "embedding_model"]
    list_filter = [("status", titled_filter("status")), ("embedding_model", titled_filter("embedding model")),
                   ("dataset", titled_filter("dataset")), ("created_at", titled_filter("built"))]
    search_fields = ["=id", "dataset__name", "description"]
    search_help_text = "A version id (uuid), or words of the dataset name or description."
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["id", "dataset", "number", "description", "status", "error", "page_link"]}),
        ("Counts", {"fields": ["records", "split_table", "embeddings", "excluded"]}),
        ("Build request", {"fields": ["embedding_model", "embedding_dimensions", "selection_readable",
                                      "requested_aids_readable", "text_template_version", "split_ratios_readable",
                                      "seed", "force_regenerate", "include_inconsistent", "created_by"]}),
        ("Frozen", {"fields": ["content_hash", "created_at", "frozen_at"]}),
    ]
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]]
    show_full_result_count = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.defer("requested_aids") if _is_changelist(request) else queryset  # the detail page shows it

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
            reason = services.validation_error_message(error, with_fields=False)
            self.message_user(request, f"{obj}: {reason}", messages.ERROR)

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

    # --- list columns

    @admin.display(description="version", ordering="dataset__name")
    def version(self, version):
        return format_html("{} v{}", truncated(version.dataset.name, 40), version.number)

    @admin.display(description="records (yes/no)", ordering="total_records")
    def records(self, version):
        return f"{version.total_records} ({version.positives}/{version.negatives})"

    @admin.display(description="train/val/test")
    def splits(self, version):
        return f"{version.train_count}/{version.val_count}/{version.test_count}"

    @admin.display(description="embeddings new/reused")
    def embeddings(self, version):
        return f"{version.new_embeddings}/{version.reused_embeddings}"

    # --- change view

    @admin.display(description="page")
    def page_link(self, version):
        url = reverse("datasets:version-detail", args=[version.pk])
        return format_html('<a href="{}">open the version page</a>', url)

    @admin.display(description="splits")
    def split_table(self, version):
        rows = [(name, counts.get("total", 0), counts.get("positives", 0), counts.get("negatives", 0))
                for name, counts in (version.split_counts or {}).items() if isinstance(counts, dict)]
        if not rows:
            return self.splits(version)
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><thead><tr><th>split</th><th>records</th><th>yes</th><th>no</th></tr></thead>"
            "<tbody>{}</tbody></table>", body,
        )

    @admin.display(description="excluded")
    def excluded(self, version):
        reasons = [
            (version.unlabeled_excluded, "unlabeled"),
            (version.inconsistent_excluded, "inconsistent"),
            (version.empty_text_excluded, "empty text"),
            (version.missing_excluded, "no longer in the corpus"),
        ]
        shown = ", ".join(f"{count} {reason}" for count, reason in reasons if count)
        included = f"; {version.inconsistent_included} inconsistent included" if version.inconsistent_included else ""
        return (shown or "none") + included

    @admin.display(description="selection")
    def selection_readable(self, version):
        return readable_json(version.selection)

    @admin.display(description="requested aids")
    def requested_aids_readable(self, version):
        aids = version.requested_aids or []
        shown = ", ".join(f"av{aid}" for aid in aids[:REQUESTED_AIDS_SHOWN])
        more = f" … and {len(aids) - REQUESTED_AIDS_SHOWN} more" if len(aids) > REQUESTED_AIDS_SHOWN else ""
        return f"{len(aids)}: {shown}{more}" if aids else "—"

    @admin.display(description="split ratios (train/val/test)")
    def split_ratios_readable(self, version):
        return f"{version.train_ratio:g} / {version.val_ratio:g} / {version.test_ratio:g}"


@admin.register(DatasetTask)
class DatasetTaskAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["short_id", "type", "status", "progress", "version_link", "attempts", "created_at", "completed_at"]
    list_select_related = ["dataset_version__dataset"]
    list_filter = [("status", titled_filter("status")), ("type", titled_filter("type")),
                   ("created_at", titled_filter("created"))]
    search_fields = ["=id", "=celery_task_id"]
    search_help_text = "A task id (uuid) or a Celery task id."
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["id", "type", "status", "version_link", "created_by", "error"]}),
        ("Progress", {"fields": ["progress", "message", "eta_seconds", "done", "total", "completed_steps",
                                 "total_steps"]}),
        ("Request and result", {"fields": ["params_readable", "result_readable"]}),
        ("Worker", {"fields": ["worker", "celery_task_id", "attempts", "worker_starts", "heartbeat_at",
                               "created_at", "started_at", "completed_at"]}),
    ]
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset_version__dataset").defer(
            "dataset_version__requested_aids"
        )

    @admin.display(description="task", ordering="id")
    def short_id(self, task):
        return format_html('<code title="{}">{}…</code>', task.pk, str(task.pk)[:8])

    @admin.display(description="progress", ordering="percentage")
    def progress(self, task):
        return f"{task.current_step} · {task.percentage:.0f}%"

    @admin.display(description="dataset version")
    def version_link(self, task):
        version = task.dataset_version
        if version is None:
            return "—"
        url = reverse("admin:datasets_datasetversion_change", args=[version.pk])
        return format_html('<a href="{}">{} v{}</a>', url, truncated(version.dataset.name, 40), version.number)

    @admin.display(description="request")
    def params_readable(self, task):
        return readable_json(task.params)

    @admin.display(description="result")
    def result_readable(self, task):
        return readable_json(task.result)


@admin.register(Exclusion)
class ExclusionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: exclusions are written by cleaning tasks and reverted on the cleaning
    page, the API or with the action below (which stamps reverted_at, never deletes)."""

    list_display = ["id", "video", "rule", "reason_short", "task", "created_at", "reverted_at"]
    list_filter = ["rule", ("reverted_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["=video__aid", "reason"]
    list_select_related = ["video", "task"]
    actions = ["revert_selected"]

    @admin.display(description="reason")
    def reason_short(self, exclusion):
        return truncated(exclusion.reason, 80)

    @admin.action(description="Revert the selected exclusions")
    def revert_selected(self, request, queryset):
        ids = list(queryset.filter(reverted_at__isnull=True).values_list("pk", flat=True)[:1000])
        if not ids:
            self.message_user(request, "No active exclusion selected.", messages.WARNING)
            return
        reverted = exclusions_revert(exclusion_ids=ids, user=request.user)
        self.message_user(request, f"Reverted {reverted} exclusion(s).")


# --- Duplicate groups (deduplication tasks) ------------------------------------------------

from datasets.models import DuplicateGroup, DuplicateGroupMember  # noqa: E402


class DuplicateGroupMemberInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DuplicateGroupMember
    fields = ["video", "distance", "keep"]
    readonly_fields = fields
    extra = 0
    show_change_link = False


@admin.register(DuplicateGroup)
class DuplicateGroupAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: groups are written by deduplication tasks; keep/exclude is chosen on the
    duplicates page or the API (which write the exclusions)."""

    list_display = ["id", "task", "kind", "size", "max_distance", "embedding_model", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["=members__video__aid"]
    list_select_related = ["task", "embedding_model"]
    inlines = [DuplicateGroupMemberInline]
