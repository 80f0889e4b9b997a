"""The bulk labeling page (admins): filter, preview the count and examples, confirm."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.permissions import roles_required
from core.roles import ADMINS
from core.validation import validation_error_message
from labeling import bulk_labels
from labeling.forms import AnswerForm


BULK_LABEL_FORBIDDEN = "Bulk labeling writes one label per video for a whole filtered set: only admins can use it."


@require_http_methods(["GET", "POST"])
@roles_required((ADMINS,), BULK_LABEL_FORBIDDEN)
def bulk_label(request):
    """GET with a filter: the preview. POST: confirm (writes the labels and the audit row)."""
    params = request.POST if request.method == "POST" else request.GET
    context = {"filter": {field: params.get(field, "") for field in bulk_labels.FILTER_FIELDS}}
    if request.method == "GET" and not any(context["filter"].values()):
        return render(request, "labeling/bulk_label.html", context)
    try:
        bulk_filter = bulk_labels.bulk_filter_clean(params)
    except ValidationError as error:
        context["error"] = validation_error_message(error)
        return render(request, "labeling/bulk_label.html", context, status=400)
    if request.method == "GET":
        context["preview"] = bulk_labels.bulk_label_preview(bulk_filter)
        return render(request, "labeling/bulk_label.html", context)
    answer = AnswerForm(request.POST)
    try:
        previewed = int(request.POST.get("previewed_count", ""))
    except ValueError:
        previewed = -1
    if not answer.is_valid() or previewed < 0:
        context["error"] = "Preview the filter, then confirm with yes or no."
        return render(request, "labeling/bulk_label.html", context, status=400)
    operation = bulk_labels.bulk_label_apply(
        bulk_filter=bulk_filter, value=answer.cleaned_data["value"], user=request.user, previewed_count=previewed,
    )
    skipped = f" ({previewed - operation.labels_written} already had your “{'yes' if operation.value else 'no'}”)" \
        if operation.labels_written < previewed else ""
    messages.success(
        request,
        f"Bulk label #{operation.pk}: {'yes' if operation.value else 'no'} on {operation.labels_written} "
        f"video{'s' if operation.labels_written != 1 else ''} — {operation.description}{skipped}.",
    )
    return redirect("labeling:bulk-label")
