"""Run analysis pages: reproduce a run (a POST from its page) and its test-split mistakes.

The mistakes page reads the run's saved predictions (``training.selectors.run_errors``:
two queries whatever the number of mistakes), sortable by confidence and filterable to
false positives or false negatives; each row links to the video's labeling history and
to the review page. Team members read it; only admins reproduce.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from core.partial_rendering import page_or_partial, wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.validation import validation_error_message
from experiments.models import Run
from training import selectors, services

ERRORS_TEMPLATE = "training/run_errors.html"
MISTAKES_PAGE_SIZE = selectors.MISTAKES_PAGE_SIZE


def _go(request, url: str):
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def run_reproduce(request, run_id: int):
    """Queue a copy of the run (same version, architecture, params, seed) and open it;
    refused with the reason on the run's page."""
    try:
        reproduction = services.run_reproduce(run_id)
    except Run.DoesNotExist:
        raise Http404("No such run") from None
    except ValidationError as error:
        messages.error(request, f"Cannot reproduce this run: {validation_error_message(error, with_fields=False)}")
        return _go(request, reverse("experiments:run-detail", args=[run_id]))
    messages.success(request, f"Queued {reproduction.name}, a reproduction of run {run_id}.")
    return _go(request, reverse("experiments:run-detail", args=[reproduction.pk]))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def run_errors(request, run_id: int):
    """``?kind=fp|fn`` filters, ``?order=most_confident|least_confident`` sorts,
    ``?page=`` pages (the htmx partial for filter changes)."""
    kind = request.GET.get("kind") or None
    order = request.GET.get("order") or selectors.MistakeOrder.MOST_CONFIDENT
    page_number = request.GET.get("page", "1")
    page_index = int(page_number) if page_number.isascii() and page_number.isdigit() and int(page_number) > 0 else 1
    context = {"kind": kind or "", "order": order, "orders": selectors.MistakeOrder.choices}
    try:
        errors = selectors.run_errors(run_id, kind=kind, order=order,
                                      offset=(page_index - 1) * MISTAKES_PAGE_SIZE, limit=MISTAKES_PAGE_SIZE)
    except Run.DoesNotExist:
        raise Http404("No such run") from None
    except ValidationError as error:
        if "run_id" in getattr(error, "error_dict", {}):
            raise Http404("No such run") from None
        return render(request, ERRORS_TEMPLATE, {**context, "run": selectors.run_for_errors(run_id),
                                                 "problem": validation_error_message(error)}, status=400)
    except selectors.RunPredictionsMissing as missing:
        return render(request, ERRORS_TEMPLATE, {**context, "run": selectors.run_for_errors(run_id),
                                                 "problem": str(missing)}, status=404)
    pages = max(1, -(-errors.matching // MISTAKES_PAGE_SIZE))
    context.update(run=errors.run, errors=errors, page={
        "number": page_index, "pages": pages, "first_row": (page_index - 1) * MISTAKES_PAGE_SIZE + 1,
        "previous": page_index - 1 if page_index > 1 else None,
        "next": page_index + 1 if page_index < pages else None,
    })
    return render(request, page_or_partial(request, ERRORS_TEMPLATE, "mistakes"), context)
