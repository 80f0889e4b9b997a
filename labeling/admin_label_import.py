"""The admin's "Import labels" page (an upload form over ``labeling.label_import``).

``LabelAdmin.get_urls`` mounts it at ``import/``; the Label change list shows an
"Import labels" button to those who may use it
(``templates/admin/labeling/label/change_list.html``). Access: staff (``admin_view``) in
the admins role, the same rule as ``POST /api/v1/labels/import``.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.roles import can_write_machine_labels
from labeling.admin_import import import_result_messages
from labeling.label_import import FORMATS, ImportFileError, import_labels

TEMPLATE = "admin/labeling/label/import.html"
#: Uploads above this are imported in the background (``/datasets/tasks/label-import/``):
#: a million rows take about a minute, longer than a request should.
BACKGROUND_IMPORT_BYTES = 5 * 1024 * 1024


class LabelImportForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL (one JSON object per line) or CSV with a header row: aid, user, label, created_at."
    )
    format = forms.ChoiceField(
        choices=[("", "From the file extension")] + [(name, name.upper()) for name in FORMATS], required=False
    )
    atomic = forms.BooleanField(
        required=False, label="All or nothing", help_text="Write nothing when any row is rejected."
    )
    dry_run = forms.BooleanField(
        required=False, label="Dry run", help_text="Check the file and count what would happen; write nothing."
    )


def import_view(model_admin, request):
    """GET: the upload form. POST: import, then the same page with the summary and errors."""
    if not can_write_machine_labels(request.user):
        raise PermissionDenied
    if request.method == "POST" and int(request.META.get("CONTENT_LENGTH") or 0) > BACKGROUND_IMPORT_BYTES:
        # A large file goes to the background import (a datasets task, which labeling must
        # not import: a URL name only). 307: the browser posts the same form there.
        return HttpResponseRedirect(reverse("datasets:curation-label-import"), status=307)
    result = None
    status = 200
    if request.method == "POST":
        form = LabelImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = import_labels(
                    source=upload,
                    format=form.cleaned_data["format"] or None,
                    filename=upload.name,
                    atomic=form.cleaned_data["atomic"],
                    dry_run=form.cleaned_data["dry_run"],
                )
            except ImportFileError as error:
                form.add_error("file" if not form.cleaned_data["format"] else None, str(error))
                status = 400
            else:
                import_result_messages(request, upload.name, result)
                form = LabelImportForm()
        else:
            status = 400
    else:
        form = LabelImportForm()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import labels",
        "opts": model_admin.model._meta,
        "form": form,
        "result": result,
        "has_view_permission": model_admin.has_view_permission(request),
    }
    return TemplateResponse(request, TEMPLATE, context, status=status)
