"""Label-issue pages: the scans, starting one (from a dataset version, or from a run:
``?run=<id>``), a scan's progress (polled while it runs) and its ranked issues, and
"send to review" for the chosen ones.

Team members read; admins start and cancel scans; reviewers and admins send issues to
the review queue. Thin views: ``training.services`` writes, ``label_issue_selectors`` reads.
"""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh

from core.partial_rendering import wants_partial
from core.permissions import experiment_runner_required, reviewer_required, team_role_required
from core.roles import can_review, can_run_experiments
from core.validation import validation_error_message
from experiments.models import Run
from training import label_issue_selectors as selectors
from training import services
from training.label_issue_forms import LabelIssueScanForm
from training.models import ACTIVE_JOB_STATUSES, LabelIssueScan
from training.services.label_issues import label_issue_default_reason

SCANS_PAGE_SIZE = 50
ISSUES_PAGE_SIZE = 100
_ID = re.compile(r"[0-9]{1,18}")


def _scan_or_404(scan_id: int) -> LabelIssueScan:
    try:
        return selectors.label_issue_scan_get(scan_id)
    except LabelIssueScan.DoesNotExist:
        raise Http404(f"No label-issue scan {scan_id}") from None


def _run_from_query(value: str | None) -> Run | None:
    if not value or not _ID.fullmatch(value):
        return None
    return Run.objects.filter(pk=int(value), deleted_at__isnull=True).select_related("experiment").first()


@require_safe
@team_role_required
def scan_list(request):
    version = request.GET.get("version") or None
    try:
        scans = selectors.label_issue_scan_list(dataset_version_id=version)
        page = Paginator(scans, SCANS_PAGE_SIZE).get_page(request.GET.get("page"))
    except ValidationError:  # a malformed version id
        raise Http404("No such dataset version") from None
    return render(request, "training/label_issue_list.html", {
        "page": page, "version": version, "can_start": can_run_experiments(request.user),
    })


@require_http_methods(["GET", "HEAD", "POST"])
@team_role_required
def scan_new(request):
    """GET: the form (``?run=<id>`` reuses a run's architecture, params and version;
    ``?version=<id>`` presets the version). POST (admins): queue the scan → its page."""
    if request.method == "POST":
        if not can_run_experiments(request.user):
            raise PermissionDenied("Only admins can start label-issue scans.")
        run = _run_from_query(request.POST.get("run"))
        form = LabelIssueScanForm(request.POST, run=run)
        if form.is_valid():
            try:
                scan = services.label_issue_scan_create(**form.scan_request(), user=request.user)
            except ValidationError as error:
                form.errors_from_service(error)
            else:
                messages.success(request, f"Queued label-issue scan {scan.pk}.")
                return redirect("training:label-issue-scan-detail", scan_id=scan.pk)
        return render(request, "training/label_issue_new.html",
                      {"form": form, "run": run, "can_start": True}, status=400)
    run = _run_from_query(request.GET.get("run"))
    initial = {"folds": LabelIssueScanForm.base_fields["folds"].initial}
    if run is not None:
        initial.update(run=run.pk, dataset_version=str(run.dataset_version_id))
    elif request.GET.get("version"):
        initial["dataset_version"] = request.GET["version"]
    form = LabelIssueScanForm(initial=initial, run=run)
    return render(request, "training/label_issue_new.html",
                  {"form": form, "run": run, "can_start": can_run_experiments(request.user)})


def _detail_context(request, scan: LabelIssueScan) -> dict:
    return {
        "scan": scan,
        "polling": scan.status in ACTIVE_JOB_STATUSES,
        "can_cancel": scan.status in ACTIVE_JOB_STATUSES and can_run_experiments(request.user),
        "percentage": round(100 * scan.folds_done / scan.folds) if scan.folds else 0,
    }


@require_safe
@team_role_required
def scan_detail(request, scan_id: int):
    scan = _scan_or_404(scan_id)
    context = _detail_context(request, scan)
    page = Paginator(selectors.label_issue_rows(scan.pk), ISSUES_PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(page=page, can_send=can_review(request.user),
                   rows=[{"issue": issue, "default_reason": label_issue_default_reason(issue)}
                         for issue in page.object_list])
    return render(request, "training/label_issue_detail.html", context)


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def scan_progress(request, scan_id: int):
    """The progress card, polled while the scan runs; once it has ended the page reloads
    (to show the issues)."""
    if not wants_partial(request):
        return redirect("training:label-issue-scan-detail", scan_id=scan_id)
    scan = _scan_or_404(scan_id)
    if scan.status not in ACTIVE_JOB_STATUSES:
        return HttpResponseClientRefresh()
    return render(request, "training/label_issue_detail.html#progress", _detail_context(request, scan))


@require_POST
@experiment_runner_required
def scan_cancel(request, scan_id: int):
    try:
        services.label_issue_scan_cancel(scan_id)
    except LabelIssueScan.DoesNotExist:
        raise Http404(f"No label-issue scan {scan_id}") from None
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
    else:
        messages.info(request, f"Cancelled label-issue scan {scan_id}.")
    url = reverse("training:label-issue-scan-detail", args=[scan_id])
    return HttpResponseClientRefresh() if wants_partial(request) else redirect(url)


@require_POST
@reviewer_required
def scan_review_requests(request, scan_id: int):
    """Send the checked issues to the review queue with the reason typed (or each
    issue's default one)."""
    scan = _scan_or_404(scan_id)
    raw_ids = request.POST.getlist("video_ids")
    page = request.POST.get("page", "")
    url = reverse("training:label-issue-scan-detail", args=[scan.pk]) + (f"?page={page}" if _ID.fullmatch(page) else "")
    if not all(_ID.fullmatch(value) for value in raw_ids):
        messages.error(request, "Malformed video ids.")
        return redirect(url)
    try:
        counts = services.label_issue_review_requests_create(
            scan_id=scan.pk, video_ids=[int(value) for value in raw_ids], reason=request.POST.get("reason", ""),
            user=request.user,
        )
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
        return redirect(url)
    skipped = f" ({counts.already_open} already had an open request)" if counts.already_open else ""
    messages.success(request, f"Sent {counts.created} video{'s' if counts.created != 1 else ''} to review{skipped}.")
    return redirect(url)
