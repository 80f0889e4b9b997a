"""What every labeling queue does with a card's key press — the labeling page's and the
model-assisted ones (``training``): check the posted card, write the labeler's own
label through ``labeling.services``, undo the last one, with the same messages and the
same 400s. The views around it only choose the next card.

A vote on a video the labeler already answered is never written silently: the page may
be a stale copy (Back after opening a video's history), so the answer comes back as the
same card asking to confirm the change (``confirm_change=1``).

Besides yes and no a labeler can pass on a card: "unsure" (with an optional comment
reviewers see) or skip, both persisted (``labeling.passes``). Everything written from a
card records the guideline version the card was shown with (its ``guideline`` field)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from labeling import passes, selectors, services
from labeling.forms import AnswerForm, UnsureForm
from labeling.guidelines import guideline_for_card
from labeling.models import PassReason, Video


def form_errors_response(form: forms.Form) -> HttpResponseBadRequest:
    errors = "; ".join(f"{field}: {' '.join(field_errors)}" for field, field_errors in form.errors.items())
    return HttpResponseBadRequest(errors)


CONFIRM_CHANGE_TEMPLATE = "labeling/partials/card_confirm_change.html"


def answer_record(request, card: forms.Form) -> HttpResponse | None:
    """Write the answer posted with ``card`` (a form with ``video_id``) as the user's
    human label and return None (the view shows the next card); otherwise the response
    to send: a 400 naming the field when the card or the answer is malformed, or the
    card again asking to confirm when the user already has a different label on the
    video. A video deleted meanwhile is a message, not an error: the labeler goes on."""
    answer = AnswerForm(request.POST)
    for form in (card, answer):
        if not form.is_valid():
            return form_errors_response(form)
    video = Video.objects.filter(pk=card.cleaned_data["video_id"]).first()
    if video is None:
        messages.error(request, f"Video {card.cleaned_data['video_id']} does not exist (deleted meanwhile?).")
        return None
    value = answer.cleaned_data["value"]
    if not answer.cleaned_data["confirm_change"]:
        previous = selectors.my_effective_label(user=request.user, video=video)
        if previous is not None and previous.value != value:
            return _confirm_change(request, card, video=video, previous=previous, value=value)
        if previous is not None:  # the same answer again (a stale card): nothing to write
            messages.info(request, f"You had already labeled av{video.aid} {'yes' if value else 'no'}.")
            return None
    services.label_create(video=video, user=request.user, value=value,
                          guideline=guideline_for_card(request.POST.get("guideline")))
    passes.pass_clear(user=request.user, video=video)
    return None


def _card_video(request, card: forms.Form) -> Video | None:
    video = Video.objects.filter(pk=card.cleaned_data["video_id"]).first()
    if video is None:
        messages.error(request, f"Video {card.cleaned_data['video_id']} does not exist (deleted meanwhile?).")
    return video


def unsure_record(request, card: forms.Form) -> HttpResponse | None:
    """Write the "unsure" answer posted with ``card`` (and its optional comment) and return
    None (the view shows the next card), or a 400 naming the bad field. On a video the
    user already voted on it replaces the vote only from the card of an earlier answer
    (←, ``confirm_change=1``); otherwise it says so and writes nothing."""
    unsure = UnsureForm(request.POST)
    for form in (card, unsure):
        if not form.is_valid():
            return form_errors_response(form)
    video = _card_video(request, card)
    if video is None:
        return None
    comment = unsure.cleaned_data["comment"]
    guideline = guideline_for_card(request.POST.get("guideline"))
    previous = selectors.my_effective_label(user=request.user, video=video)
    if previous is None:
        passes.label_pass(user=request.user, video=video, reason=PassReason.UNSURE, comment=comment, guideline=guideline)
    elif unsure.cleaned_data["confirm_change"]:
        passes.unsure_replacing_vote(user=request.user, video=video, comment=comment, guideline=guideline)
        messages.info(request, f"Changed your “{'yes' if previous.value else 'no'}” on av{video.aid} to “unsure”.")
    else:
        messages.info(request, f"You had already labeled av{video.aid} {'yes' if previous.value else 'no'}: "
                               "to change it to unsure, go back to it with ←.")
    return None


def skip_record(request, card: forms.Form) -> HttpResponse | None:
    """Persist a skip of the card's video (the queue does not serve it to the user again,
    also after logout); a 400 for a malformed card. Skipping a video the user already
    answered (a stale card, or the card of an earlier answer) keeps the answer: nothing
    is written."""
    if not card.is_valid():
        return form_errors_response(card)
    video = _card_video(request, card)
    if video is None or request.POST.get("confirm_change") == "1":
        return None
    if selectors.my_effective_label(user=request.user, video=video) is not None:
        return None
    passes.label_pass(user=request.user, video=video, reason=PassReason.SKIP,
                      guideline=guideline_for_card(request.POST.get("guideline")))
    return None


def _confirm_change(request, card: forms.Form, *, video: Video, previous, value: bool) -> HttpResponse:
    # The card's own fields (mode, model, …) go back with the confirmation, so the next
    # card comes from the same queue.
    fields = [(name, field_value) for name, field_value in card.cleaned_data.items()
              if name not in ("video_id", "mode") and field_value not in (None, "")]
    context = {"video": video, "mode": card.cleaned_data.get("mode") or "", "card_fields": fields,
               "change": {"previous": previous, "value": value, "url": request.path}}
    return render(request, CONFIRM_CHANGE_TEMPLATE, context)


def answer_undo(request) -> Video | None:
    """Undo the user's last answer (a vote, an "unsure" or a skip) and say so; the video to
    show again (``None``: nothing to undo)."""
    undone = passes.answer_undo_last(user=request.user)
    if undone is None:
        messages.info(request, "Nothing to undo.")
        return None
    messages.info(request, f"Undid your “{undone.answer}” on av{undone.video.aid}.")
    return undone.video
