from django.urls import include, path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("", views.label_page, name="label"),
    path("answer", views.label_answer, name="answer"),
    path("skip", views.label_skip, name="skip"),
    path("undo", views.label_undo, name="undo"),
    path("", include("labeling.labeler_urls")),
    path("", include("labeling.review_urls")),
    path("", include("labeling.queue_urls")),
]
