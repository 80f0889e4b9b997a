"""Admin for sweeps: read-mostly (rows are written by ``training.services`` only), their
trials inline; the one lever is cancel, through the same service as the page and API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from core.admin_display import ReadOnlyAdminMixin, pretty_json
from core.validation import validation_error_message
from training import services
from training.models import Sweep, SweepTrial


class SweepTrialInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SweepTrial
    fields = ["number", "run", "run_status", "pruned", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("run")

    @admin.display(description="run status")
    def run_status(self, trial: SweepTrial) -> str:
        return trial.run.status


@admin.register(Sweep)
class SweepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "experiment", "architecture_key", "sampler", "trial_count", "parallelism", "metric_key",
                    "status", "created_at"]
    list_filter = ["status", "sampler", "architecture_key"]
    search_fields = ["name", "study_name"]
    list_select_related = ["experiment"]
    readonly_fields = ["name", "experiment", "dataset_version", "architecture_key", "search_space_pretty",
                       "fixed_hyperparameters_pretty", "sampler", "trial_count", "parallelism", "metric_key",
                       "metric_direction", "pruning", "seed", "study_name", "status", "error", "created_by",
                       "started_at", "finished_at", "created_at"]
    exclude = ["search_space", "fixed_hyperparameters"]
    inlines = [SweepTrialInline]
    actions = ["cancel_sweeps"]

    def has_change_permission(self, request, obj=None):
        # Viewing the change page (read-only fields) needs view permission only.
        return False

    @admin.display(description="search space")
    def search_space_pretty(self, sweep: Sweep):
        return pretty_json(sweep.search_space)

    @admin.display(description="fixed hyperparameters")
    def fixed_hyperparameters_pretty(self, sweep: Sweep):
        return pretty_json(sweep.fixed_hyperparameters)

    @admin.action(description="Cancel the selected sweeps (and their queued and running trials)",
                  permissions=["cancel"])
    def cancel_sweeps(self, request, queryset):
        for sweep in queryset:
            try:
                services.sweep_cancel(sweep.pk)
            except ValidationError as error:
                self.message_user(request, f"{sweep.name}: {validation_error_message(error)}", messages.WARNING)
            else:
                self.message_user(request, f"{sweep.name}: cancelled.", messages.SUCCESS)

    def has_cancel_permission(self, request):
        return request.user.has_perm("training.change_sweep")


# The model registry's admin lives in its own module; importing it registers it.
import training.registry_admin  # noqa: E402,F401
