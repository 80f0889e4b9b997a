"""Pages of model-assisted labeling under ``/training/assisted/`` (``training.assisted_views``)."""

from django.urls import path

from training import assisted_views

urlpatterns = [
    path("assisted/label", assisted_views.assisted_label, name="assisted-label"),
    path("assisted/answer", assisted_views.assisted_answer, name="assisted-answer"),
    path("assisted/skip", assisted_views.assisted_skip, name="assisted-skip"),
    path("assisted/undo", assisted_views.assisted_undo, name="assisted-undo"),
    path("assisted/hint", assisted_views.assisted_hint, name="assisted-hint"),
    path("assisted/disagreements", assisted_views.assisted_disagreements, name="assisted-disagreements"),
]
