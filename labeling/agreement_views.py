"""Agreement pages: the team summary, one labeler's agreement, and a pair's disagreements."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from core.api.error_views import ExplainedPermissionDenied
from core.roles import can_review
from labeling import agreement

DISAGREEMENT_PAGE_SIZE = 50


@require_safe
def agreement_dashboard(request):
    """Corpus counters, Cohen's kappa per labeler pair and Fleiss' kappa overall (constant queries)."""
    return render(request, "labeling/agreement.html", {"summary": agreement.agreement_summary()})


@require_safe
def labeler_agreement(request, user_id: int):
    """One labeler: videos labeled, agreement with consensus, κ with each other labeler."""
    labeler = get_object_or_404(get_user_model(), pk=user_id)
    context = {"labeler": labeler, "stats": agreement.labeler_agreement(labeler.pk)}
    return render(request, "labeling/agreement_labeler.html", context)


@require_safe
def pair_disagreements(request, user_a_id: int, user_b_id: int):
    """The videos two labelers answered differently. Blind labeling: reviewers and admins
    see any pair; a labeler only their own pairs (every video listed is one they voted on)."""
    if not (can_review(request.user) or request.user.pk in (user_a_id, user_b_id)):
        raise ExplainedPermissionDenied(
            "A pair's disagreements show both labelers' votes: only reviewers, admins and the two labelers may see them."
        )
    users = get_user_model().objects.in_bulk([user_a_id, user_b_id])
    if user_a_id == user_b_id or len(users) != 2:
        raise Http404("No such pair of labelers.")
    page = Paginator(agreement.pair_disagreements(user_a_id, user_b_id), DISAGREEMENT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"user_a": users[user_a_id], "user_b": users[user_b_id], "page": page}
    return render(request, "labeling/agreement_pair.html", context)
