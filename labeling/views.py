"""Labeling pages (the review pages are in ``review_views``). Full pages on a normal request, partials for htmx.

The queue's pages and the history page change with every label: ``never_cache`` keeps
the browser from showing a stored copy on Back (a stale card would relabel a video)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import page_or_partial, wants_partial
from core.permissions import labeler_required
from core.roles import ADMINS, user_has_role
from labeling import card_answers, guidelines, passes, queue, selectors
from labeling.forms import CardForm
from labeling.models import Video
from labeling.passes import PreviousAnswer
from labeling.selectors import QueueMode

# The page holds this many rendered cards after the one it shows.
PREFETCH_DEPTH = 2
MAX_HOLDING = 10


def _mode(request) -> str:
    mode = request.POST.get("mode") or request.GET.get("mode")
    return mode if mode in QueueMode.values else QueueMode.UNLABELED


def _render_card(request, *, video: Video | None, mode: str, previous: PreviousAnswer | None = None,
                 upcoming: list[Video] | None = None):
    """The card for ``video`` with what the page around it needs: the progress counter, the
    guideline it is shown with, and the next cards already rendered (prefetched: the page
    swaps one in on a key press, without waiting for the answer's round trip)."""
    guideline = guidelines.guideline_current()
    context = {
        "video": video,
        "mode": mode,
        "modes": QueueMode.choices,
        "progress": selectors.labeling_progress(user=request.user),
        "guideline": guideline,
        "previous_answer": previous,
        "card_fields": [("confirm_change", "1"), ("previous", "1")] if previous else [],
        "prefetch": _prefetch_context(request, mode=mode, holding=[video.pk] if video else [], count=PREFETCH_DEPTH,
                                      guideline=guideline, upcoming=upcoming),
    }
    if not wants_partial(request):
        context["guideline_html"] = guidelines.guideline_html(guideline)
        context["can_edit_guideline"] = user_has_role(request.user, ADMINS)
    return render(request, page_or_partial(request, "labeling/label.html", "card"), context)


def _prefetch_context(request, *, mode: str, holding: list[int], count: int, guideline,
                      upcoming: list[Video] | None = None) -> dict:
    """The next ``count`` videos of the queue after the ones the page holds (``upcoming``
    when the caller already has them), and whether the queue ran out before them. They
    are reserved like the card shown (``labeling.queue``): a labeler's held reservations
    come back first, so the cards the page holds are asked for and left out."""
    count = max(count, 0)
    if upcoming is None:
        reserved = queue.queue_next_videos(user=request.user, mode=mode, count=len(holding) + count)
        upcoming = [video for video in reserved if video.pk not in holding]
    videos = upcoming[:count]
    return {"videos": videos, "exhausted": len(videos) < count, "guideline": guideline}


def _holding(request) -> list[int] | None:
    """The videos the page still holds after a prefetched swap (the card it shows now and
    its buffer), as it posts them; None: the post comes from a plain (htmx) button."""
    raw = request.POST.get("holding")
    if raw is None:
        return None
    ids = [int(part) for part in raw.split(",") if part.strip().isdigit()]
    return ids[:MAX_HOLDING]


def _after_answer(request, mode: str):
    """What an answer's response holds: for a prefetching page, the cards that top its
    buffer up (it already shows the next one) with the progress and messages; for a plain
    post, the next card."""
    holding = _holding(request)
    if holding is None:
        return _next_card(request, mode)
    context = {
        "mode": mode,
        "progress": selectors.labeling_progress(user=request.user),
        "prefetch": _prefetch_context(request, mode=mode, holding=holding, count=PREFETCH_DEPTH + 1 - len(holding),
                                      guideline=guidelines.guideline_current()),
    }
    response = render(request, "labeling/label.html#prefetched", context)
    response["X-Card-Outcome"] = "next"
    return response


def _next_card(request, mode: str):
    # Reserved for this labeler (labeling.queue), with the cards the page prefetches: a
    # reload shows the same cards, and another labeler is not handed them meanwhile unless
    # the overlap target needs them too.
    videos = queue.queue_next_videos(user=request.user, mode=mode, count=1 + PREFETCH_DEPTH)
    return _render_card(request, video=videos[0] if videos else None, mode=mode, upcoming=videos[1:])


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
    return refused or _after_answer(request, _mode(request))


def _pass_then_next(request, record_pass):
    # The pass is persisted (labeling.passes): the queue never serves the video to them again.
    refused = record_pass(request, CardForm(request.POST))
    return refused or _after_answer(request, _mode(request))


@never_cache
@require_POST
@labeler_required
def label_skip(request):
    return _pass_then_next(request, card_answers.skip_record)


@never_cache
@require_POST
@labeler_required
def label_unsure(request):
    return _pass_then_next(request, card_answers.unsure_record)


@never_cache
@require_POST
@labeler_required
def label_undo(request):
    video = card_answers.answer_undo(request)
    if video is None:
        return _next_card(request, _mode(request))
    return _render_card(request, video=video, mode=_mode(request))


@never_cache
@require_POST
@labeler_required
def label_previous(request):
    """←: the user's previous answer on its card, to change it. From the card of an
    earlier answer, the one before that."""
    card = CardForm(request.POST)
    before = card.cleaned_data["video_id"] if card.is_valid() and request.POST.get("previous") == "1" else None
    answer = passes.previous_answer(user=request.user, before_video_id=before)
    if answer is None:
        messages.info(request, "No earlier answer to go back to.")
        return _next_card(request, _mode(request))
    return _render_card(request, video=answer.video, mode=_mode(request), previous=answer)
