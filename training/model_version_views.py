"""A model version's ONNX export (the panel its page loads, the export button for admins,
the download) and its model card. Thin views: ``training.services`` writes, the
selectors (``model_export_selectors``, ``model_card``) read."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from core.validation import validation_error_message
from training import services
from training.evaluation_selectors import evaluated_version_get
from training.model_card import model_card
from training.model_export_selectors import OnnxFileChanged, onnx_export_file, onnx_export_info
from training.models import ModelVersion

ONNX_TEMPLATE = "training/partials/onnx_panel.html"
CARD_TEMPLATE = "training/model_card.html"


def _version_or_404(version_id: int) -> ModelVersion:
    try:
        return evaluated_version_get(version_id)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No model version {version_id}") from None


def _onnx_response(request, version: ModelVersion, *, error: str = "", status: int = 200, notice: str = ""):
    context = {"version": version, "onnx": onnx_export_info(version.pk), "error": error, "notice": notice,
               "can_export": can_run_experiments(request.user)}
    if wants_partial(request):
        return render(request, f"{ONNX_TEMPLATE}#onnx-panel", context)
    return render(request, "training/onnx_version.html", context, status=status)


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def onnx_panel(request, version_id: int):
    """The version's ONNX export: parity numbers and download link, or the export button."""
    return _onnx_response(request, _version_or_404(version_id))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def onnx_export(request, version_id: int):
    """Export now (synchronously: one small graph and the test split's parity check)."""
    version = _version_or_404(version_id)
    try:
        info = services.model_version_onnx_export(version.pk, user=request.user)
    except ValidationError as error:
        return _onnx_response(request, version, error=validation_error_message(error, with_fields=False), status=400)
    return _onnx_response(request, version, notice=(
        f"Exported: ONNX Runtime matches torch within {info.max_difference:.2g} on {info.checked_rows} test rows."
    ))


@require_safe
@team_role_required
def onnx_download(request, version_id: int):
    version = _version_or_404(version_id)
    try:
        found = onnx_export_file(version.pk)
    except OnnxFileChanged as changed:
        raise Http404(str(changed)) from None
    if found is None:
        raise Http404(f"Model version {version.pk} has not been exported to ONNX")
    path, _ = found
    filename = f"{version.registered_model.name}-v{version.number}.onnx"
    return FileResponse(path.open("rb"), as_attachment=True, filename=filename, content_type="application/octet-stream")


@require_safe
@team_role_required
def model_card_page(request, version_id: int):
    try:
        card = model_card(version_id)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No model version {version_id}") from None
    return render(request, CARD_TEMPLATE, {"card": card, "can_export": can_run_experiments(request.user)})
