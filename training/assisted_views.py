"""Model-assisted labeling pages: the labeling loop (same card, same keys: 1 yes, 0 no,
s skip, u undo) fed by a model version's queues (``training.assisted_selectors``), the
per-user switch for the model's hint on the card, and the list of videos where the
production version disagrees with the consensus.

Labelers, reviewers and admins label here; an answer is the labeler's own human label
(``labeling.services.label_create``), never the model's. Which version serves the queue:
the production version of ``?model=<name>`` (or of the only model in production).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import page_or_partial, wants_partial
from core.permissions import labeler_required, team_role_required
from core.validation import validation_error_message
from labeling import selectors as labeling_selectors
from labeling import card_answers
from labeling.models import Video
from training import assisted_selectors as selectors
from training import registry_selectors, services
from training.assisted_forms import AssistedCardForm
from training.assisted_selectors import AssistedCard, AssistedMode, DisagreementOrder
from training.models import ModelVersion, RegisteredModel

SKIPPED_SESSION_KEY = "assisted_skipped_video_ids"
SERVED_SESSION_KEY = "assisted_served_video_ids"
MAX_REMEMBERED_SKIPS = 500
DISAGREEMENTS_PAGE_SIZE = 50
LABEL_TEMPLATE = "training/assisted_label.html"
DISAGREEMENTS_TEMPLATE = "training/assisted_disagreements.html"


@dataclass(frozen=True)
class _Queue:
    """What the request asks for: the mode, the model's name as given (None: the only
    model in production), the version that serves it, or why there is none."""

    mode: str
    model_name: str | None
    version: ModelVersion | None
    problem: str = ""


def _param(request, name: str) -> str:
    return (request.POST.get(name) or request.GET.get(name) or "").strip()


def _queue(request) -> _Queue:
    mode = _param(request, "mode")
    mode = mode if mode in AssistedMode.values else AssistedMode.UNCERTAIN
    model_name = _param(request, "model") or None
    try:
        version = registry_selectors.production_version(model_name)
    except RegisteredModel.DoesNotExist:
        return _Queue(mode, model_name, None, f"There is no registered model named “{model_name}”.")
    except ValidationError as error:  # several models in production and none named
        return _Queue(mode, model_name, None, validation_error_message(error, with_fields=False))
    return _Queue(mode, model_name, version)


def _session_ids(request, key: str) -> list[int]:
    return request.session.get(key, [])


def _remember(request, key: str, video_id: int, keep: int) -> None:
    request.session[key] = (_session_ids(request, key) + [video_id])[-keep:]


def _queue_url(queue: _Queue) -> str:
    query = {"mode": queue.mode, **({"model": queue.model_name} if queue.model_name else {})}
    return f"{reverse('training:assisted-label')}?{urlencode(query)}"


def _card_context(request, queue: _Queue, card: AssistedCard | None) -> dict:
    show_hint = selectors.assisted_hint_shown(request.user)
    return {
        "queue": queue,
        "version": queue.version,
        "mode": queue.mode,
        "modes": AssistedMode.choices,
        "card": card,
        "video": card.video if card else None,
        "card_fields": [("model", queue.model_name)] if queue.model_name else [],
        "show_hint": show_hint,
        "hint_template": "training/partials/assisted_hint.html" if show_hint else None,
        "empty_template": "training/partials/assisted_empty.html",
        "progress": labeling_selectors.labeling_progress(user=request.user),
    }


def _render(request, queue: _Queue, card: AssistedCard | None):
    context = _card_context(request, queue, card)
    if queue.version is None:
        # Nothing serves the queue: the card says why (an htmx post gets the same card).
        context["video"] = None
    elif card is None:
        context["scored"] = selectors.version_is_scored(queue.version)
    if not wants_partial(request):
        context["models"] = registry_selectors.registered_model_list()
    return render(request, page_or_partial(request, LABEL_TEMPLATE, "card"), context)


def _next_card(request, queue: _Queue):
    card = None
    if queue.version is not None:
        card = selectors.assisted_queue_next(
            user=request.user, version=queue.version, mode=queue.mode,
            exclude_video_ids=_session_ids(request, SKIPPED_SESSION_KEY),
            recent_video_ids=_session_ids(request, SERVED_SESSION_KEY),
        )
        if card is not None and queue.mode == AssistedMode.DIVERSE:
            _remember(request, SERVED_SESSION_KEY, card.video.pk, selectors.DIVERSE_RECENT_SERVED)
    return _render(request, queue, card)


def _card_of(request, queue: _Queue, video: Video):
    card = (selectors.assisted_card_for(version=queue.version, video=video) if queue.version is not None
            else AssistedCard(video, None, 0.0))
    return _render(request, queue, card)


@never_cache  # changes with every label: Back must never show a stale card
@require_GET
@vary_on_headers("HX-Request")
@labeler_required
def assisted_label(request):
    return _next_card(request, _queue(request))


@require_POST
@labeler_required
def assisted_answer(request):
    refused = card_answers.answer_record(request, AssistedCardForm(request.POST))
    return refused or _next_card(request, _queue(request))


@require_POST
@labeler_required
def assisted_skip(request):
    card = AssistedCardForm(request.POST)
    if not card.is_valid():
        return card_answers.form_errors_response(card)
    _remember(request, SKIPPED_SESSION_KEY, card.cleaned_data["video_id"], MAX_REMEMBERED_SKIPS)
    return _next_card(request, _queue(request))


@require_POST
@labeler_required
def assisted_undo(request):
    queue = _queue(request)
    video = card_answers.answer_undo(request)
    return _next_card(request, queue) if video is None else _card_of(request, queue, video)


@require_POST
@labeler_required
def assisted_hint(request):
    """Show or hide the model's hint on this user's cards (``show`` = 1 or 0). htmx gets
    the current card again (with or without the hint); a plain form post goes back to
    the queue."""
    show = request.POST.get("show")
    if show not in ("0", "1"):
        return HttpResponseBadRequest("show: must be 1 (show the model's hint) or 0 (hide it)")
    services.assisted_hint_set(request.user, show == "1")
    queue = _queue(request)
    if not request.htmx:
        return redirect(_queue_url(queue))
    card = AssistedCardForm(request.POST)
    video = Video.objects.filter(pk=card.cleaned_data["video_id"]).first() if card.is_valid() else None
    return _card_of(request, queue, video) if video is not None else _next_card(request, queue)


@require_GET
@vary_on_headers("HX-Request")
@team_role_required
def assisted_disagreements(request):
    queue = _queue(request)
    order = request.GET.get("order", DisagreementOrder.CONFIDENT)
    if order not in DisagreementOrder.values:
        order = DisagreementOrder.CONFIDENT
    page = None
    if queue.version is not None:
        page = Paginator(selectors.model_disagreements(queue.version, order=order), DISAGREEMENTS_PAGE_SIZE).get_page(
            request.GET.get("page")
        )
    context = {"queue": queue, "version": queue.version, "page": page, "order": order,
               "orders": DisagreementOrder.choices}
    if not wants_partial(request):
        context["models"] = registry_selectors.registered_model_list()
    return render(request, page_or_partial(request, DISAGREEMENTS_TEMPLATE, "results"), context)
