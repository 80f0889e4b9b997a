"""The admin's "Import videos" page (an upload form over ``labeling.video_import``).

``VideoAdmin.get_urls`` mounts it at ``import/``; the Video change list shows an
"Import videos" button (``templates/admin/labeling/video/change_list.html``).
Access: staff (``admin_view``) with the add and change permissions on videos
(superusers and the ``admins`` group have them), the same rule as the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from core.roles import can_import_videos
from labeling.video_import import FORMATS, ImportFileError, import_videos

TEMPLATE = "admin/labeling/video/import.html"
# Rejected rows listed as messages; the page's table lists every kept error.
MAX_ERROR_MESSAGES = 20


def import_result_messages(request, file_name: str, result) -> None:
    """An import's outcome as admin messages (video and label imports alike): the
    summary, then the first rejected rows; the page's table lists them all."""
    level = messages.SUCCESS if not result.rejected else messages.WARNING
    messages.add_message(request, level, f"{file_name}: {result.summary()}")
    for line, message in result.errors[:MAX_ERROR_MESSAGES]:
        messages.warning(request, f"line {line}: {message}")
    hidden = result.rejected - min(len(result.errors), MAX_ERROR_MESSAGES)
    if hidden:
        messages.warning(request, f"... and {hidden} more rejected rows (listed below)")


class VideoImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one JSON object per line), CSV with a header row, or a JSON array.")
    format = forms.ChoiceField(
        choices=[("", "From the file extension")] + [(name, name.upper()) for name in FORMATS],
        required=False,
    )


def import_view(model_admin, request):
    """GET: the upload form. POST: import, then the same page with the summary and errors."""
    if not can_import_videos(request.user):
        raise PermissionDenied
    result = None
    status = 200
    if request.method == "POST":
        form = VideoImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = import_videos(source=upload, format=form.cleaned_data["format"] or None, filename=upload.name)
            except ImportFileError as error:
                form.add_error("file" if not form.cleaned_data["format"] else None, str(error))
                status = 400
            else:
                import_result_messages(request, upload.name, result)
                form = VideoImportForm()
        else:
            status = 400
    else:
        form = VideoImportForm()
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import videos",
        "opts": opts,
        "form": form,
        "result": result,
        "has_view_permission": model_admin.has_view_permission(request),
    }
    return TemplateResponse(request, TEMPLATE, context, status=status)
