"""What every labeling queue does with a card's key press — the labeling page's and the
model-assisted ones (``training``): check the posted card, write the labeler's own
label through ``labeling.services``, undo the last one, with the same messages and the
same 400s. The views around it only choose the next card."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponseBadRequest

from labeling import services
from labeling.forms import AnswerForm
from labeling.models import Video


def form_errors_response(form: forms.Form) -> HttpResponseBadRequest:
    errors = "; ".join(f"{field}: {' '.join(field_errors)}" for field, field_errors in form.errors.items())
    return HttpResponseBadRequest(errors)


def answer_record(request, card: forms.Form) -> HttpResponseBadRequest | None:
    """Write the answer posted with ``card`` (a form with ``video_id``) as the user's
    human label; a 400 naming the field when the card or the answer is malformed. A
    video deleted meanwhile is a message, not an error: the labeler goes on."""
    answer = AnswerForm(request.POST)
    for form in (card, answer):
        if not form.is_valid():
            return form_errors_response(form)
    video = Video.objects.filter(pk=card.cleaned_data["video_id"]).first()
    if video is None:
        messages.error(request, f"Video {card.cleaned_data['video_id']} does not exist (deleted meanwhile?).")
    else:
        services.label_create(video=video, user=request.user, value=answer.cleaned_data["value"])
    return None


def answer_undo(request) -> Video | None:
    """Undo the user's last label and say so; the video to show again (``None``: nothing
    to undo)."""
    label = services.label_undo_last(user=request.user)
    if label is None:
        messages.info(request, "Nothing to undo.")
        return None
    messages.info(request, f"Undid your “{'yes' if label.value else 'no'}” on av{label.video.aid}.")
    return label.video
