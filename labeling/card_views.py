"""Pages around the labeling card: the guideline (read by everyone on the team, published
by admins) and each labeler's keys."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from core.permissions import labeler_required, team_role_required
from core.roles import ADMINS, user_has_role
from labeling import guidelines, labeler_keys
from labeling.forms import GuidelineForm, KeysForm


def _form_errors_from(form, error: ValidationError) -> None:
    for field, field_errors in error.message_dict.items():
        form.add_error(None if field == "__all__" or field not in form.fields else field, field_errors)


@require_GET
@team_role_required
def guideline_page(request):
    """The current guideline (or ``?version=N``) and the list of versions."""
    version = request.GET.get("version", "")
    if version:
        guideline = guidelines.guideline_by_version(int(version)) if version.isdigit() else None
        if guideline is None:
            raise Http404(f"There is no guideline version {version}.")
    else:
        guideline = guidelines.guideline_current()
    context = {
        "guideline": guideline,
        "guideline_html": guidelines.guideline_html(guideline),
        "history": guidelines.guideline_history(),
        "can_edit": user_has_role(request.user, ADMINS),
    }
    return render(request, "labeling/guidelines.html", context)


@require_http_methods(["GET", "POST"])
@team_role_required
def guideline_edit(request):
    """Admins publish a new version (the form starts from the current text)."""
    if not user_has_role(request.user, ADMINS):
        raise PermissionDenied("Only admins can edit the labeling guideline.")
    current = guidelines.guideline_current()
    form = GuidelineForm(request.POST or None, initial={"body": current.body if current else ""})
    if request.method == "POST" and form.is_valid():
        try:
            published = guidelines.guideline_publish(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            _form_errors_from(form, error)
        else:
            messages.success(request, f"Published guideline v{published.version}.")
            return redirect("labeling:guidelines")
    return render(request, "labeling/guideline_edit.html", {"form": form, "current": current})


@require_http_methods(["GET", "POST"])
@labeler_required
def keys_page(request):
    """The user's keys: one field per action, filled by pressing the key."""
    current = labeler_keys.labeler_keys(request.user)
    form = KeysForm(request.POST or None, initial=current, actions=labeler_keys.ACTIONS)
    if request.method == "POST" and form.is_valid():
        try:
            labeler_keys.labeler_keys_set(user=request.user, keys=form.cleaned_data)
        except ValidationError as error:
            _form_errors_from(form, error)
        else:
            messages.success(request, "Saved your keys.")
            return redirect("labeling:keys")
    context = {"form": form, "keys": labeler_keys.labeler_key_list(current), "defaults": labeler_keys.DEFAULT_KEYS}
    return render(request, "labeling/keys.html", context)
