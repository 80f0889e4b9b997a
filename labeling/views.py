"""Labeling and review pages. Full pages on a normal request, partials for htmx.

The queue's pages and the history page change with every label: ``never_cache`` keeps
the browser from showing a stored copy on Back (a stale card would relabel a video)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import page_or_partial
from core.permissions import labeler_required, reviewer_required
from core.validation import validation_error_message
from labeling import agreement, card_answers, selectors, services
from labeling.forms import AnswerForm, CardForm
from labeling.models import Video
from labeling.selectors import QueueMode, ReviewQueueShow

SKIPPED_SESSION_KEY = "labeling_skipped_video_ids"
MAX_REMEMBERED_SKIPS = 500
REVIEW_PAGE_SIZE = 50


def _mode(request) -> str:
    mode = request.POST.get("mode") or request.GET.get("mode")
    return mode if mode in QueueMode.values else QueueMode.UNLABELED


def _skipped(request) -> list[int]:
    return request.session.get(SKIPPED_SESSION_KEY, [])


def _render_card(request, *, video: Video | None, mode: str):
    context = {
        "video": video,
        "mode": mode,
        "modes": QueueMode.choices,
        "progress": selectors.labeling_progress(user=request.user),
    }
    return render(request, page_or_partial(request, "labeling/label.html", "card"), context)


def _next_card(request, mode: str):
    video = selectors.labeling_queue_next(user=request.user, mode=mode, exclude_video_ids=_skipped(request))
    return _render_card(request, video=video, mode=mode)


@never_cache
@require_GET
@vary_on_headers("HX-Request")
@labeler_required
def label_page(request):
    return _next_card(request, _mode(request))


@never_cache
@require_POST
@labeler_required
def label_answer(request):
    refused = card_answers.answer_record(request, CardForm(request.POST))
    return refused or _next_card(request, _mode(request))


@never_cache
@require_POST
@labeler_required
def label_skip(request):
    card = CardForm(request.POST)
    if not card.is_valid():
        return card_answers.form_errors_response(card)
    request.session[SKIPPED_SESSION_KEY] = (_skipped(request) + [card.cleaned_data["video_id"]])[-MAX_REMEMBERED_SKIPS:]
    return _next_card(request, _mode(request))


@never_cache
@require_POST
@labeler_required
def label_undo(request):
    video = card_answers.answer_undo(request)
    if video is None:
        return _next_card(request, _mode(request))
    return _render_card(request, video=video, mode=_mode(request))


@require_GET
@vary_on_headers("HX-Request")
@reviewer_required
def review_list(request):
    """The review queue: unresolved conflicts and videos with an open review request
    (with the request's reason), a fixed number of queries whatever their number."""
    search = request.GET.get("q", "").strip()
    order = request.GET.get("order", "votes")
    show = request.GET.get("show", ReviewQueueShow.ALL)
    if show not in ReviewQueueShow.values:
        show = ReviewQueueShow.ALL
    page = Paginator(selectors.review_queue(search=search, order=order, show=show), REVIEW_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    labels = selectors.effective_labels_by_video(video.pk for video in page.object_list)
    rows = [{"video": video, "labels": labels.get(video.pk, [])} for video in page.object_list]
    context = {"page": page, "rows": rows, "q": search, "order": order, "show": show,
               "shows": ReviewQueueShow.choices, "counts": selectors.review_queue_counts(search=search)}
    return render(request, page_or_partial(request, "labeling/review_list.html", "results"), context)


@require_POST
@reviewer_required
def review_resolve(request, video_id: int):
    video = get_object_or_404(Video, pk=video_id)
    answer = AnswerForm(request.POST)
    if not answer.is_valid():
        return card_answers.form_errors_response(answer)
    try:
        review = services.review_create(
            video=video, reviewer=request.user, value=answer.cleaned_data["value"],
            note=answer.cleaned_data["note"], only_if_unresolved=True,
        )
    except ValidationError as error:
        # 200, not 409: htmx swaps only 2xx responses by default, and the row must say why.
        reason = validation_error_message(error, with_fields=False)
        return render(request, "labeling/review_list.html#stale-row", {"video": video, "error": reason})
    labels = selectors.effective_labels_by_video([video.pk]).get(video.pk, [])
    return render(request, "labeling/review_list.html#resolved-row", {"row": {"video": video, "labels": labels}, "review": review})


@never_cache
@require_GET
def video_detail(request, aid: int):
    """A video's consensus and full history. Blind labeling: a labeler who has not voted
    on it sees only the video and their own (undone) labels."""
    video = get_object_or_404(Video.objects.select_related("consensus"), aid=aid)
    labels, reviews = selectors.video_history(video)
    if not selectors.can_see_votes(user=request.user, video=video):
        own = [label for label in labels if label.user_id == request.user.pk]
        return render(request, "labeling/video_detail.html", {"video": video, "labels": own, "blind": True})
    effective = selectors.effective_labels_by_video([video.pk]).get(video.pk, [])
    return render(request, "labeling/video_detail.html", {"video": video, "labels": labels, "reviews": reviews, "effective": effective})


@require_safe
def agreement_dashboard(request):
    """Corpus counters, Cohen's kappa per labeler pair and Fleiss' kappa overall (constant queries)."""
    return render(request, "labeling/agreement.html", {"summary": agreement.agreement_summary()})
