"""The agreement dashboard: how consistently the team labels. Any logged-in user may see it."""

from django.shortcuts import render
from django.views.decorators.http import require_safe

from labeling.agreement import agreement_summary


@require_safe
def agreement_dashboard(request):
    """Corpus counters, Cohen's kappa per labeler pair and Fleiss' kappa overall (constant queries)."""
    return render(request, "labeling/agreement.html", {"summary": agreement_summary()})
