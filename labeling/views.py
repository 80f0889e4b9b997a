"""Labeling and review pages. Full pages on a normal request, partials for htmx."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from labeling import selectors, services
from labeling.models import Video
from labeling.roles import ADMINS, REVIEWERS, user_has_role
from labeling.selectors import QueueMode

SKIPPED_SESSION_KEY = "labeling_skipped_video_ids"
MAX_REMEMBERED_SKIPS = 500
REVIEW_PAGE_SIZE = 50


def _mode(request) -> str:
    mode = request.POST.get("mode") or request.GET.get("mode") or QueueMode.UNLABELED
    return mode if mode in QueueMode.VALUES else QueueMode.UNLABELED


def _skipped(request) -> list[int]:
    return request.session.get(SKIPPED_SESSION_KEY, [])


def _render_card(request, *, video: Video | None, mode: str, status: int = 200):
    context = {
        "video": video,
        "mode": mode,
        "modes": QueueMode.CHOICES,
        "progress": selectors.labeling_progress(user=request.user),
        "effective_labels": [],
    }
    template = "labeling/label.html#card" if request.htmx else "labeling/label.html"
    return render(request, template, context, status=status)


def _next_card(request, mode: str):
    video = selectors.labeling_queue_next(user=request.user, mode=mode, exclude_video_ids=_skipped(request))
    return _render_card(request, video=video, mode=mode)


def _posted_video_id(request) -> int | None:
    try:
        return int(request.POST["video_id"])
    except (KeyError, ValueError):
        return None


@require_GET
def label_page(request):
    return _next_card(request, _mode(request))


@require_POST
def label_answer(request):
    video_id = _posted_video_id(request)
    value = {"1": True, "0": False}.get(request.POST.get("value", ""))
    if video_id is None or value is None:
        return HttpResponseBadRequest("video_id and value (1 or 0) are required")
    try:
        services.label_create(video_id=video_id, user=request.user, value=value)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return _next_card(request, _mode(request))


@require_POST
def label_skip(request):
    video_id = _posted_video_id(request)
    if video_id is None:
        return HttpResponseBadRequest("video_id is required")
    request.session[SKIPPED_SESSION_KEY] = (_skipped(request) + [video_id])[-MAX_REMEMBERED_SKIPS:]
    return _next_card(request, _mode(request))


@require_POST
def label_undo(request):
    label = services.label_undo_last(user=request.user)
    if label is None:
        messages.info(request, "Nothing to undo.")
        return _next_card(request, _mode(request))
    messages.info(request, f"Undid your “{'yes' if label.value else 'no'}” on av{label.video.aid}.")
    return _render_card(request, video=label.video, mode=_mode(request))


def _require_reviewer(request) -> None:
    if not user_has_role(request.user, REVIEWERS, ADMINS):
        raise PermissionDenied("Only reviewers can see and resolve conflicts.")


@require_GET
def review_list(request):
    _require_reviewer(request)
    search = request.GET.get("q", "").strip()
    order = request.GET.get("order", "votes")
    page = Paginator(selectors.inconsistent_videos(search=search, order=order), REVIEW_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    labels = selectors.effective_labels_by_video(video.pk for video in page.object_list)
    rows = [{"video": video, "labels": labels.get(video.pk, [])} for video in page.object_list]
    context = {"page": page, "rows": rows, "q": search, "order": order, "orders": selectors.REVIEW_ORDERINGS}
    template = "labeling/review_list.html#results" if request.htmx else "labeling/review_list.html"
    return render(request, template, context)


@require_POST
def review_resolve(request, video_id: int):
    _require_reviewer(request)
    value = {"1": True, "0": False}.get(request.POST.get("value", ""))
    if value is None:
        return HttpResponseBadRequest("value (1 or 0) is required")
    review = services.review_create(
        video_id=video_id, reviewer=request.user, value=value, note=request.POST.get("note", "")
    )
    video = Video.objects.select_related("consensus").get(pk=video_id)
    labels = selectors.effective_labels_by_video([video_id]).get(video_id, [])
    return render(request, "labeling/review_list.html#resolved-row", {"row": {"video": video, "labels": labels}, "review": review})


@require_GET
def video_detail(request, aid: int):
    video = get_object_or_404(Video.objects.select_related("consensus"), aid=aid)
    labels, reviews = selectors.video_history(video)
    effective = selectors.effective_labels_by_video([video.pk]).get(video.pk, [])
    return render(
        request,
        "labeling/video_detail.html",
        {"video": video, "labels": labels, "reviews": reviews, "effective": effective,
         "can_review": user_has_role(request.user, REVIEWERS, ADMINS)},
    )
