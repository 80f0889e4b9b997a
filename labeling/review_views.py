"""Review pages: the review queue (resolve a conflict or request in place), a video's
history with its reviews (a reviewer may re-review: the newest review wins).

Thin: parse, call ``labeling.services`` / the selectors, render."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import page_or_partial
from core.permissions import reviewer_required, roles_required
from core.roles import REVIEWING_ROLES
from core.validation import validation_error_message
from labeling import card_answers, review_selectors, selectors, services
from labeling.forms import AnswerForm
from labeling.models import Video
from labeling.selectors import ReviewQueueShow

REVIEW_PAGE_SIZE = 50
REVIEW_QUEUE_FORBIDDEN = (
    "The review queue is where reviewers settle videos whose labelers disagree or that someone asked to be "
    "reviewed. Only reviewers and admins can open it."
)
REVIEW_ORDERS = ("votes", "recent", "aid", "requested")


def _queue_filter(params) -> dict:
    show = params.get("show", ReviewQueueShow.ALL)
    order = params.get("order", "votes")
    return {
        "search": params.get("q", "").strip(),
        "order": order if order in REVIEW_ORDERS else "votes",
        "show": show if show in ReviewQueueShow.values else ReviewQueueShow.ALL,
    }


def _counts_context(search: str, show: str) -> dict:
    counts = selectors.review_queue_counts(search=search)
    shown = {ReviewQueueShow.CONFLICTS: counts["conflicts"], ReviewQueueShow.REQUESTS: counts["requests"]}.get(show)
    return {"counts": counts, "shown": shown, "show": show}


@never_cache
@require_GET
@vary_on_headers("HX-Request")
@roles_required(REVIEWING_ROLES, REVIEW_QUEUE_FORBIDDEN)
def review_list(request):
    """The review queue: unresolved conflicts and videos with an open review request
    (with the request's reason), each with the labelers' votes, unsure answers and
    comments; a fixed number of queries whatever their number."""
    queue = _queue_filter(request.GET)
    page = Paginator(selectors.review_queue(**queue), REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    video_ids = [video.pk for video in page.object_list]
    labels = selectors.effective_labels_by_video(video_ids)
    unsure = review_selectors.unsure_answers_by_video(video_ids)
    rows = [
        {"video": video, "labels": labels.get(video.pk, []), "unsure": unsure.get(video.pk, [])}
        for video in page.object_list
    ]
    context = {"page": page, "rows": rows, "q": queue["search"], "order": queue["order"],
               "shows": ReviewQueueShow.choices, **_counts_context(queue["search"], queue["show"])}
    return render(request, page_or_partial(request, "labeling/review_list.html", "results"), context)


@require_POST
@reviewer_required
def review_resolve(request, video_id: int):
    """Resolve one row of the queue. The answer removes the row and refreshes the
    counters out of band (htmx), so the page never needs a reload."""
    video = get_object_or_404(Video, pk=video_id)
    answer = AnswerForm(request.POST)
    if not answer.is_valid():
        return card_answers.form_errors_response(answer)
    queue = _queue_filter(request.POST)
    try:
        review = services.review_create(
            video=video, reviewer=request.user, value=answer.cleaned_data["value"],
            note=answer.cleaned_data["note"], only_if_unresolved=True,
        )
    except ValidationError as error:
        # 200, not 409: htmx swaps only 2xx responses by default, and the row must say why.
        reason = validation_error_message(error, with_fields=False)
        return render(request, "labeling/review_list.html#stale-row", {"video": video, "error": reason})
    context = {"video": video, "review": review, **_counts_context(queue["search"], queue["show"])}
    return render(request, "labeling/review_list.html#resolved", context)


@never_cache
@require_GET
def video_detail(request, aid: int):
    """A video's consensus and full history. Blind labeling: a labeler who has not voted
    on it sees only the video and their own (undone) labels."""
    video = get_object_or_404(Video.objects.select_related("consensus"), aid=aid)
    labels, _ = selectors.video_history(video)
    if not selectors.can_see_votes(user=request.user, video=video):
        own = [label for label in labels if label.user_id == request.user.pk]
        return render(request, "labeling/video_detail.html", {"video": video, "labels": own, "blind": True})
    effective = selectors.effective_labels_by_video([video.pk]).get(video.pk, [])
    context = {
        "video": video, "labels": labels, "reviews": review_selectors.video_reviews(video), "effective": effective,
        "unsure": review_selectors.unsure_answers_by_video([video.pk]).get(video.pk, []),
    }
    return render(request, "labeling/video_detail.html", context)


@require_POST
@reviewer_required
def review_supersede(request, video_id: int):
    """A reviewer's new answer for a video, resolved or not: it supersedes the earlier
    review (the newest one is the consensus; the history keeps both)."""
    video = get_object_or_404(Video, pk=video_id)
    answer = AnswerForm(request.POST)
    if not answer.is_valid():
        messages.error(request, "Choose yes or no (a note may be at most 2000 characters).")
        return redirect("labeling:video-detail", aid=video.aid)
    review = services.review_create(
        video=video, reviewer=request.user, value=answer.cleaned_data["value"], note=answer.cleaned_data["note"],
    )
    messages.success(request, f"Reviewed av{video.aid}: {'yes' if review.value else 'no'}. Earlier reviews are superseded.")
    return redirect("labeling:video-detail", aid=video.aid)
