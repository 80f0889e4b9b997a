from django.urls import include, path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("", views.label_page, name="label"),
    path("answer", views.label_answer, name="answer"),
    path("skip", views.label_skip, name="skip"),
    path("undo", views.label_undo, name="undo"),
    path("review/", views.review_list, name="review-list"),
    path("review/<int:video_id>/resolve", views.review_resolve, name="review-resolve"),
    path("videos/<int:aid>/", views.video_detail, name="video-detail"),
    path("agreement/", views.agreement_dashboard, name="agreement"),
    path("", include("labeling.labeler_urls")),
    path("", include("labeling.review_urls")),
    path("", include("labeling.queue_urls")),
]
