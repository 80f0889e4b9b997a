"""Pages of the model registry: the registered models, one model (its versions, gate
rules, stage history, "in production at"), one version (lineage, stage changes with the
gate's verdict inline, the evaluation / ONNX / scoring panels), and registering a run.

Team members read; only experiment runners (admins) create models, edit gate rules,
register runs and change stages. Every write goes through ``training.services``; a
refused change (stale page, concurrent promotion, failing gate rule) is shown where the
button was, with the service's message.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from core.partial_rendering import page_or_partial, wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from core.validation import validation_error_message
from training import registry_page_selectors, registry_selectors, services
from training.registry_forms import (
    ModelRegisterForm,
    ProductionAtForm,
    RegisteredModelForm,
    TransitionForm,
    gate_rules_formset,
)
from training.models import ModelVersion, RegisteredModel

LIST_TEMPLATE = "training/registry_list.html"
MODEL_TEMPLATE = "training/registry_model.html"
VERSION_TEMPLATE = "training/registry_version.html"
#: Sent (``HX-Trigger``) after a stage change; the version page's panels reload on it.
VERSION_CHANGED_EVENT = "model-version-changed"
REGISTER_TEMPLATE = "training/registry_register.html"
#: Panels other pages of the registry serve, loaded into the version page when they exist.
VERSION_PANELS = (("evaluation", "training:evaluation-panel"), ("onnx", "training:onnx-panel"),
                  ("scoring", "training:scoring-panel"))


def _model_or_404(name: str) -> RegisteredModel:
    # A NUL cannot be stored in PostgreSQL text: no model has one in its name.
    if "\x00" in name:
        raise Http404("No such model")
    try:
        return registry_selectors.registered_model_get(name)
    except RegisteredModel.DoesNotExist:
        raise Http404("No such model") from None


def _version_or_404(model: RegisteredModel, number: int) -> ModelVersion:
    try:
        return registry_selectors.model_version_by_number(model, number)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No version {number} of {model.name}") from None


def _redirect(request, url: str):
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


def _form_failed(request, template: str, partial: str, context: dict, status: int = 400):
    """A refused form again with its errors: 200 for htmx (which swaps 2xx only), ``status`` otherwise."""
    return render(request, page_or_partial(request, template, partial), context,
                  status=200 if wants_partial(request) else status)


# --- the list -----------------------------------------------------------------------------


def _list_context(request, form: RegisteredModelForm | None = None) -> dict:
    can_run = can_run_experiments(request.user)
    return {
        "models": registry_selectors.registered_model_list(),
        "form": form or (RegisteredModelForm() if can_run else None),
        "can_run": can_run,
    }


@require_safe
@team_role_required
def registry(request):
    return render(request, LIST_TEMPLATE, _list_context(request))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def registered_model_create(request):
    form = RegisteredModelForm(request.POST)
    model = None
    if form.is_valid():
        try:
            model = services.registered_model_create(**form.model_request(), user=request.user)
        except ValidationError as error:
            form.errors_from_service(error)
    if model is None:
        return _form_failed(request, LIST_TEMPLATE, "model-form", _list_context(request, form))
    messages.success(request, f"Model {model.name} created: register a succeeded run as its first version.")
    return _redirect(request, reverse("training:registered-model", args=[model.name]))


# --- one model ------------------------------------------------------------------------------


def _test_metrics(versions: list[ModelVersion]) -> dict[int, dict[str, float]]:
    return registry_page_selectors.run_test_metrics([version.run_id for version in versions]) if versions else {}


def _production_at_context(request, model: RegisteredModel) -> dict:
    form = ProductionAtForm(request.GET or None)
    at = form.moment() if request.GET.get("at") else None
    return {
        "at_form": form,
        "at": at,
        "production_at": registry_selectors.production_version_at(model, at) if at else None,
    }


def _model_context(request, model: RegisteredModel, rules_formset=None) -> dict:
    versions = list(registry_selectors.model_versions(model))
    metrics = _test_metrics(versions)
    can_run = can_run_experiments(request.user)
    return {
        "model": model,
        "versions": [(version, metrics.get(version.run_id, {})) for version in versions],
        "production": next((version for version in versions if version.stage == "production"), None),
        "history": list(registry_selectors.model_history(model)),
        "rules": registry_page_selectors.gate_rule_descriptions(model.gate_rules),
        "rules_formset": rules_formset or (gate_rules_formset(model.gate_rules) if can_run else None),
        "can_run": can_run,
        **_production_at_context(request, model),
    }


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def registered_model(request, name: str):
    """The model's page; ``?at=`` answers which version was in production then (htmx:
    only that block)."""
    model = _model_or_404(name)
    if wants_partial(request) and "at" in request.GET:
        return render(request, f"{MODEL_TEMPLATE}#production-at", {"model": model,
                                                                    **_production_at_context(request, model)})
    return render(request, MODEL_TEMPLATE, _model_context(request, model))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def registered_model_gates(request, name: str):
    """Save the gate rules (the rows kept, the empty row added when filled). Bad rows:
    the editor again with each error at its field; nothing saved."""
    model = _model_or_404(name)
    formset = gate_rules_formset(model.gate_rules, data=request.POST)
    saved = False
    if formset.is_valid():
        try:
            model = services.registered_model_update(model.pk, gate_rules=formset.rules)
            saved = True
        except ValidationError as error:
            formset._non_form_errors = formset.error_class(error.messages)
    if not saved:
        context = {"model": model, "rules_formset": formset, "can_run": True}
        if wants_partial(request):
            return render(request, f"{MODEL_TEMPLATE}#gate-rules", context)
        return render(request, MODEL_TEMPLATE, _model_context(request, model, formset), status=400)
    count = len(model.gate_rules)
    message = f"Gate rules of {model.name} saved: {count} rule{'s' if count != 1 else ''}."
    if wants_partial(request):
        return render(request, f"{MODEL_TEMPLATE}#gate-rules", {
            "model": model, "rules_formset": gate_rules_formset(model.gate_rules), "can_run": True,
            "rules": registry_page_selectors.gate_rule_descriptions(model.gate_rules), "saved_message": message,
        })
    messages.success(request, message)
    return redirect("training:registered-model", name=model.name)


# --- one version ----------------------------------------------------------------------------


def _version_context(request, version: ModelVersion, *, form: TransitionForm | None = None,
                     result: dict | None = None) -> dict:
    can_run = can_run_experiments(request.user)
    targets = registry_page_selectors.legal_next_stages(version.stage)
    return {
        "model": version.registered_model,
        "version": version,
        "metrics": _test_metrics([version]).get(version.run_id, {}),
        "transitions": list(registry_page_selectors.version_history(version)),
        "targets": targets,
        "form": form or (TransitionForm(version=version) if can_run else None),
        "offers_production": "production" in targets,
        "result": result,
        "can_run": can_run,
        "panels": VERSION_PANELS,
    }


@require_safe
@team_role_required
def model_version(request, name: str, number: int):
    version = _version_or_404(_model_or_404(name), number)
    return render(request, VERSION_TEMPLATE, _version_context(request, version))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def model_version_transition(request, name: str, number: int):
    """Move the version to the pressed button's stage. The answer replaces the stage
    block: the new stage and lock version with the gate's verdict, or, refused, the
    service's message (400 illegal move or bad input; 409 stale page, concurrent
    promotion, failing gate rule: the rule named) with nothing changed."""
    version = _version_or_404(_model_or_404(name), number)
    form = TransitionForm(request.POST, version=version)
    if not form.is_valid():
        return _transition_answer(request, version, form, {"ok": False, "status": 400, "message": "Fix the form."})
    requested = form.transition_request()
    try:
        moved = services.model_version_transition(version.pk, user=request.user, **requested)
    except services.GateRefused as refused:
        result = {"ok": False, "status": 409, "message": str(refused), "gate": refused.report.as_json()}
    except services.RegistryConflict as conflict:
        result = {"ok": False, "status": 409, "message": str(conflict)}
    except ValidationError as error:
        form.errors_from_service(error)
        result = {"ok": False, "status": 400, "message": validation_error_message(error)}
    else:
        latest = registry_page_selectors.version_history(moved).last()
        result = {"ok": True, "status": 200, "gate": latest.gate if latest is not None else None,
                  "message": f"Version {moved.number} of {moved.registered_model.name} moved from "
                             f"{version.get_stage_display().lower()} to {moved.get_stage_display().lower()}."}
        version, form = registry_selectors.model_version_get(moved.pk), None
    return _transition_answer(request, version, form, result)


def _transition_answer(request, version: ModelVersion, form: TransitionForm | None, result: dict):
    if not result["ok"]:
        # Show the current state (a concurrent change may have moved it) with the refusal.
        # A form of an older state would only be refused again: offer the current moves.
        fresh = registry_selectors.model_version_get(version.pk)
        if form is not None and str(fresh.lock_version) != str(form.data.get("lock_version")):
            form = None
        version = fresh
    context = _version_context(request, version, form=form, result=result)
    if wants_partial(request):
        response = render(request, page_or_partial(request, VERSION_TEMPLATE, "version-stage"), context)
        # The panels reload: a promotion's gate may have stored evaluations.
        response["HX-Trigger"] = VERSION_CHANGED_EVENT
        return response
    if result["ok"]:
        messages.success(request, result["message"])
        return redirect("training:model-version", name=version.registered_model.name, number=version.number)
    return render(request, VERSION_TEMPLATE, context, status=result["status"])


# --- registering a run ----------------------------------------------------------------------


def _register_context(request, form: ModelRegisterForm) -> dict:
    return {
        "form": form,
        "model_names": registry_page_selectors.registered_model_names(),
        "can_run": can_run_experiments(request.user),
    }


@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
@team_role_required
def model_register(request):
    """The form (``?run=`` prefills the run, ``?model=`` the name); POST (admins)
    registers the run as the model's next version, a candidate, and opens its page."""
    if request.method != "POST":
        initial = {key: request.GET[field] for key, field in (("run", "run"), ("model_name", "model"))
                   if request.GET.get(field, "").strip()}
        return render(request, REGISTER_TEMPLATE, _register_context(request, ModelRegisterForm(initial=initial)))
    if not can_run_experiments(request.user):
        raise PermissionDenied("Only admins can register runs as model versions.")
    form = ModelRegisterForm(request.POST)
    version = None
    if form.is_valid():
        try:
            version = services.model_version_register(**form.register_request(), user=request.user)
        except ValidationError as error:
            form.errors_from_service(error)
    if version is None:
        return _form_failed(request, REGISTER_TEMPLATE, "register-form", _register_context(request, form))
    name = version.registered_model.name
    messages.success(request, f"Run {version.run_id} registered as version {version.number} of {name} (candidate).")
    return _redirect(request, reverse("training:model-version", args=[name, version.number]))
