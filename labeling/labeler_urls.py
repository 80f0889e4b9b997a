"""Page routes, included by the app's ``urls.py`` (same namespace): the card's answers
beyond yes/no/skip/undo, the guideline and the keys."""

from django.urls import path

from labeling import card_views, views

urlpatterns = [
    path("unsure", views.label_unsure, name="unsure"),
    path("previous", views.label_previous, name="previous"),
    path("guidelines/", card_views.guideline_page, name="guidelines"),
    path("guidelines/edit", card_views.guideline_edit, name="guideline-edit"),
    path("keys/", card_views.keys_page, name="keys"),
]
