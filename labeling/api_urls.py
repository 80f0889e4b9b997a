from django.urls import path

from labeling import api
from labeling.api_import import VideoImportApi
from labeling.api_label_import import LabelImportApi

urlpatterns = [
    path("videos", api.VideoListApi.as_view(), name="video-list"),
    path("videos/import", VideoImportApi.as_view(), name="video-import"),
    path("videos/inconsistent", api.InconsistentVideoListApi.as_view(), name="video-inconsistent"),
    path("videos/<bigint:aid>", api.VideoDetailApi.as_view(), name="video-detail"),
    path("labels", api.LabelCreateApi.as_view(), name="label-create"),
    path("labels/import", LabelImportApi.as_view(), name="label-import"),
    path("consensus", api.ConsensusApi.as_view(), name="consensus"),
]
