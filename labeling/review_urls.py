"""Page routes, included by the app's ``urls.py`` (same namespace): the review queue,
a video's history, the agreement pages and bulk labeling."""

from django.urls import path

from labeling import agreement_views, bulk_label_views, review_views

urlpatterns = [
    path("review/", review_views.review_list, name="review-list"),
    path("review/<int:video_id>/resolve", review_views.review_resolve, name="review-resolve"),
    path("review/<int:video_id>/supersede", review_views.review_supersede, name="review-supersede"),
    path("videos/<int:aid>/", review_views.video_detail, name="video-detail"),
    path("agreement/", agreement_views.agreement_dashboard, name="agreement"),
    path("agreement/labelers/<int:user_id>/", agreement_views.labeler_agreement, name="agreement-labeler"),
    path("agreement/pairs/<int:user_a_id>/<int:user_b_id>/", agreement_views.pair_disagreements, name="agreement-pair"),
    path("bulk-label/", bulk_label_views.bulk_label, name="bulk-label"),
]
