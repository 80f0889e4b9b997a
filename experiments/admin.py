"""Admin for experiments and runs: read-mostly. Rows are written by the tracking
services only; the one lever is soft delete / restore (through the same services, so
the same refusals apply, e.g. a run still running)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q

from core.admin_display import ReadOnlyAdminMixin, pretty_json, titled_filter, truncated
from core.validation import validation_error_message
from experiments import services
from experiments.models import Artifact, Experiment, Param, Run, RunMetricSummary


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted?"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("no", "live"), ("yes", "deleted (restorable until purged)")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(deleted_at__isnull=self.value() == "no")
        return queryset


class SoftDeleteActionsMixin:
    """``soft delete`` and ``restore`` actions calling ``delete_service`` / ``restore_service``
    row by row; a refusal is reported as a message and the other rows go on."""

    delete_service = staticmethod(lambda pk: None)
    restore_service = staticmethod(lambda pk: None)

    def has_soft_delete_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def _apply(self, request, queryset, service, verb):
        done = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                service(pk)
                done += 1
            except ValidationError as error:
                self.message_user(request, validation_error_message(error, with_fields=False), messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} row(s).", messages.SUCCESS)

    @admin.action(description="Soft delete (restorable until purged)", permissions=["soft_delete"])
    def soft_delete(self, request, queryset):
        self._apply(request, queryset, self.delete_service, "Deleted")

    @admin.action(description="Restore", permissions=["soft_delete"])
    def restore(self, request, queryset):
        self._apply(request, queryset, self.restore_service, "Restored")


@admin.register(Experiment)
class ExperimentAdmin(SoftDeleteActionsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    delete_service = staticmethod(services.experiment_delete)
    restore_service = staticmethod(services.experiment_restore)
    actions = ["soft_delete", "restore"]
    list_display = ["short_name", "tag_list", "metric", "runs", "owner", "deleted_at", "created_at"]
    list_select_related = ["owner"]
    list_filter = [DeletedFilter, ("metric_direction", titled_filter("metric direction"))]
    search_fields = ["name", "description"]
    fields = ["name", "description", "tags", "owner", "default_dataset_version", "metric_key", "metric_direction",
              "deleted_at", "created_at", "updated_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            live_run_count=Count("runs", filter=Q(runs__deleted_at__isnull=True))
        )

    @admin.display(description="name", ordering="name")
    def short_name(self, experiment):
        return truncated(experiment.name, 50)

    @admin.display(description="tags")
    def tag_list(self, experiment):
        return ", ".join(experiment.tags) or "—"

    @admin.display(description="ranks by")
    def metric(self, experiment):
        return f"{experiment.metric_key} ({experiment.metric_direction})"

    @admin.display(description="runs", ordering="live_run_count")
    def runs(self, experiment):
        return experiment.live_run_count


class _RunChildInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class ParamInline(_RunChildInline):
    model = Param
    fields = readonly_fields = ["key", "value"]
    ordering = ["key"]


class RunMetricSummaryInline(_RunChildInline):
    model = RunMetricSummary
    verbose_name_plural = "metrics (latest, lowest and highest of each)"
    fields = readonly_fields = ["key", "point_count", "latest_step", "latest_value", "min_value", "min_step",
                                "max_value", "max_step"]
    ordering = ["key"]


class ArtifactInline(_RunChildInline):
    model = Artifact
    fields = readonly_fields = ["path", "size", "sha256", "updated_at"]


@admin.register(Run)
class RunAdmin(SoftDeleteActionsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    delete_service = staticmethod(services.run_delete)
    restore_service = staticmethod(services.run_restore)
    actions = ["soft_delete", "restore"]
    list_display = ["id", "short_name", "experiment", "status", "architecture_key", "seed", "attempts",
                    "started_at", "finished_at", "deleted_at"]
    list_select_related = ["experiment"]
    list_filter = [("status", titled_filter("status")), ("architecture_key", titled_filter("architecture")),
                   DeletedFilter, ("created_at", titled_filter("created"))]
    search_fields = ["name", "experiment__name"]
    search_help_text = "Words of the run's or its experiment's name."
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["name", "experiment", "status", "error", "origin_run"]}),
        ("What ran", {"fields": ["dataset_version", "architecture_key", "seed", "reproducibility_record"]}),
        ("Timings", {"fields": ["queued_at", "started_at", "finished_at", "heartbeat_at", "attempts",
                                "worker_starts", "worker", "celery_task_id", "created_at", "updated_at", "deleted_at"]}),
    ]
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]]
    inlines = [ParamInline, RunMetricSummaryInline, ArtifactInline]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and (match.url_name or "").endswith("_changelist"):
            return queryset.defer("reproducibility")  # the detail page shows it
        return queryset

    @admin.display(description="name", ordering="name")
    def short_name(self, run):
        return truncated(run.name, 40)

    @admin.display(description="reproducibility record")
    def reproducibility_record(self, run):
        return pretty_json(run.reproducibility)
