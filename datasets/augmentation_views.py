"""The "Augment train split" panel of a version's page: its augmented rows per kind,
its latest augmentation tasks (polled while one is live), and the form that queues one.

The version page includes a stub that loads the panel (``augmentation_panel``) so the
version view stays as it is. Team members read; admins (``can_manage_datasets``) queue.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from core.partial_rendering import wants_partial
from core.permissions import dataset_manager_required, team_role_required
from core.roles import can_manage_datasets
from core.validation import validation_error_message
from datasets.augmentation import (
    DEFAULT_COPIES,
    DEFAULT_NOISE_RATE,
    MAX_COPIES,
    MAX_NOISE_RATE,
    MIN_COPIES,
    MIN_NOISE_RATE,
)
from datasets.augmentation_selectors import augmentation_tasks, augmented_counts
from datasets.models import AugmentationKind, DatasetVersion, DatasetVersionStatus
from datasets.services.augmentation import augmentation_queue

TEMPLATE = "datasets/partials/augmentation_panel.html"


class AugmentForm(forms.Form):
    kinds = forms.MultipleChoiceField(choices=AugmentationKind.choices, widget=forms.CheckboxSelectMultiple,
                                      initial=list(AugmentationKind.values))
    copies = forms.IntegerField(min_value=MIN_COPIES, max_value=MAX_COPIES, initial=DEFAULT_COPIES,
                                help_text="Character-noise copies per train video")
    noise_rate = forms.FloatField(min_value=MIN_NOISE_RATE, max_value=MAX_NOISE_RATE, initial=DEFAULT_NOISE_RATE,
                                  help_text="Share of characters swapped, dropped or doubled")


def _context(request, version: DatasetVersion, form: AugmentForm | None = None) -> dict:
    counts = augmented_counts(version.pk)
    tasks = augmentation_tasks(version.pk)
    return {
        "version": version,
        "form": form or AugmentForm(),
        "counts": [(AugmentationKind(kind).label, kind, count) for kind, count in counts.items()],
        "total": sum(counts.values()),
        "tasks": tasks,
        "polling": any(not task.is_finished for task in tasks),
        "can_manage": can_manage_datasets(request.user),
        "augmentable": version.status == DatasetVersionStatus.READY,
    }


def _version(version_id) -> DatasetVersion:
    return get_object_or_404(DatasetVersion.objects.only("id", "status", "text_template_version"), pk=version_id)


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def augmentation_panel(request, version_id):
    version = _version(version_id)
    if not wants_partial(request):
        return redirect("datasets:version-detail", version_id=version.pk)
    return render(request, f"{TEMPLATE}#panel", _context(request, version))


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def augmentation_queue_view(request, version_id):
    version = _version(version_id)
    form = AugmentForm(request.POST)
    if form.is_valid():
        try:
            augmentation_queue(version_id=version.pk, params=dict(form.cleaned_data), user=request.user)
        except ValidationError as error:
            form.add_error(None, validation_error_message(error, with_fields=False))
    if form.errors:
        status = 200 if wants_partial(request) else 400
        return render(request, f"{TEMPLATE}#panel", _context(request, version, form), status=status)
    messages.success(request, "Augmentation queued: the panel shows its progress, then the rows per kind.")
    url = reverse("datasets:version-detail", args=[version.pk])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)
