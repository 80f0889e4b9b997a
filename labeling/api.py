"""REST API of the labeling app: one view per action, nested Input/Output serializers.

Query strings are read through serializers (``core.api.query_params``), lists are paginated
with a maximum page size and numbers are bounded (``core.api``): bad input is a 400.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.bounds import MAX_BIGINT
from core.api.query_params import parse_query
from core.permissions import CanLabel
from labeling import review_selectors, selectors, services
from labeling.models import LabelSource, Video


class ConsensusOutput(serializers.Serializer):
    """A video's consensus. Blind labeling: for a labeler who has not voted on the video,
    ``hidden`` is true and every other field is null (reviewers and admins always see it)."""

    consensus = serializers.BooleanField(source="value", allow_null=True)
    positive_votes = serializers.IntegerField(allow_null=True)
    negative_votes = serializers.IntegerField(allow_null=True)
    is_tie = serializers.BooleanField(allow_null=True)
    is_inconsistent = serializers.BooleanField(allow_null=True)
    reviewed = serializers.SerializerMethodField()
    hidden = serializers.SerializerMethodField()

    def get_reviewed(self, consensus) -> bool | None:
        return consensus.review_id is not None

    def get_hidden(self, consensus) -> bool:
        return False

    def to_representation(self, consensus):
        visible = self.context.get("visible_video_ids")
        if visible is not None and consensus.video_id not in visible:
            return {**{name: None for name in self.fields}, "hidden": True}
        return super().to_representation(consensus)


def _blind_context(request, video_ids) -> dict:
    """``visible_video_ids`` for the serializers: None (all) for reviewers and admins."""
    return {"visible_video_ids": review_selectors.visible_vote_video_ids(request.user, video_ids)}


class VideoOutput(serializers.ModelSerializer):
    consensus = ConsensusOutput()
    tags = serializers.ListField(source="tag_list", child=serializers.CharField())

    class Meta:
        model = Video
        fields = ["aid", "bvid", "title", "description", "tags", "uploader_mid", "uploader_name",
                  "published_at", "duration", "cover_url", "consensus"]


MAX_SEARCH_LENGTH = 200


class SearchQuery(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=MAX_SEARCH_LENGTH,
                                   help_text="words in the title, tags or uploader; an aid or av/BV id")


class VideoListQuery(SearchQuery):
    consensus = serializers.ChoiceField(choices=["true", "false", "none"], required=False,
                                        help_text='"none": no consensus yet (unlabeled, tied or disputed); '
                                                  "for a labeler, among the videos they voted on")
    inconsistent = serializers.BooleanField(required=False, help_text="for a labeler, among the videos they voted on")
    labeled = serializers.BooleanField(required=False)


class VideoListApi(ListAPIView):
    """Videos with their consensus; filter with ?search=, ?consensus=true|false|none, ?inconsistent=, ?labeled=.
    Blind labeling: a labeler sees the consensus only of videos they voted on, and the
    consensus filters match only those."""

    serializer_class = VideoOutput

    @extend_schema(parameters=[VideoListQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = parse_query(self.request, VideoListQuery)
        videos = selectors.videos_filtered(
            search=query.get("search", ""),
            consensus=query.get("consensus"),
            inconsistent=query.get("inconsistent"),
            labeled=query.get("labeled"),
        )
        if "consensus" in query or "inconsistent" in query:
            videos = review_selectors.voted_by(videos, self.request.user)
        return videos

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        context = {**self.get_serializer_context(), **_blind_context(request, [video.pk for video in page])}
        return self.get_paginated_response(VideoOutput(page, many=True, context=context).data)


class LabelCreateApi(APIView):
    permission_classes = [IsAuthenticated, CanLabel]

    class Input(serializers.Serializer):
        aid = serializers.IntegerField(min_value=1, max_value=MAX_BIGINT)
        value = serializers.BooleanField()
        source = serializers.ChoiceField(choices=LabelSource.choices, default=LabelSource.HUMAN)

        class Meta:
            ref_name = "LabelCreateRequest"

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        aid = serializers.IntegerField(source="video.aid")
        value = serializers.BooleanField()
        source = serializers.CharField()
        user = serializers.CharField(source="user.username")
        created_at = serializers.DateTimeField()

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        video = selectors.video_by_aid(data.validated_data["aid"])
        if video is None:
            raise serializers.ValidationError({"aid": f"no video with aid {data.validated_data['aid']}"})
        label = services.label_create(
            video=video, user=request.user, value=data.validated_data["value"], source=data.validated_data["source"]
        )
        return Response(self.Output(label).data, status=status.HTTP_201_CREATED)


class InconsistentVideoListApi(ListAPIView):
    """Videos whose effective labels disagree and no review resolved, with each user's label.
    Blind labeling: a labeler gets only the conflicts they voted on themselves."""

    class Output(VideoOutput):
        effective_labels = serializers.SerializerMethodField()

        class Meta(VideoOutput.Meta):
            ref_name = "InconsistentVideo"
            fields = [*VideoOutput.Meta.fields, "effective_labels"]

        def get_effective_labels(self, video) -> list[dict]:
            return [
                {"user": label.username, "value": label.value, "created_at": label.created_at}
                for label in self.context["effective_labels"].get(video.pk, [])
            ]

    serializer_class = Output

    @extend_schema(parameters=[SearchQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        videos = selectors.inconsistent_videos(search=parse_query(self.request, SearchQuery).get("search", ""))
        return review_selectors.voted_by(videos, self.request.user)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        # One query for the labels of the whole page instead of one per video.
        labels = selectors.effective_labels_by_video(video.pk for video in page)
        serializer = self.Output(page, many=True, context={**self.get_serializer_context(), "effective_labels": labels})
        return self.get_paginated_response(serializer.data)


MAX_CONSENSUS_AIDS = 10_000

ConsensusResponse = inline_serializer("ConsensusResponse", {
    "results": serializers.DictField(child=ConsensusOutput(), help_text="keyed by aid"),
    "missing": serializers.ListField(child=serializers.IntegerField(), help_text="aids not in the corpus"),
})


class ConsensusQuery(serializers.Serializer):
    aids = serializers.CharField(
        validators=[RegexValidator(r"^[0-9]+(,[0-9]+)*$", "a comma separated list of aids, e.g. 1,2,3")],
        help_text=f"comma separated, at most {MAX_CONSENSUS_AIDS}",
    )


class ConsensusApi(APIView):
    """Consensus for a list of aids: POST {"aids": [...]} or GET ?aids=1,2,3. Blind
    labeling: for a labeler, the aids they have not voted on come back ``hidden``."""

    class Input(serializers.Serializer):
        aids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_BIGINT), allow_empty=False,
            max_length=MAX_CONSENSUS_AIDS,
        )

        class Meta:
            ref_name = "ConsensusRequest"

    @extend_schema(request=Input, responses={200: ConsensusResponse})
    def post(self, request):
        return self._respond(request.data)

    @extend_schema(parameters=[ConsensusQuery], responses={200: ConsensusResponse})
    def get(self, request):
        raw = parse_query(request, ConsensusQuery)["aids"]
        return self._respond({"aids": raw.split(",")})

    def _respond(self, payload):
        data = self.Input(data=payload)
        data.is_valid(raise_exception=True)
        aids = data.validated_data["aids"]
        found = selectors.consensus_by_aid(aids)
        context = _blind_context(self.request, [row.video_id for row in found.values()])
        return Response({
            "results": {str(aid): ConsensusOutput(row, context=context).data for aid, row in found.items()},
            "missing": sorted(set(aids) - set(found)),
        })


class VideoDetailApi(APIView):
    """A video and its consensus (hidden from a labeler who has not voted on it)."""

    @extend_schema(responses={200: VideoOutput})
    def get(self, request, aid: int):
        video = selectors.video_by_aid(aid)
        if video is None:
            raise exceptions.NotFound(f"no video with aid {aid}")
        return Response(VideoOutput(video, context=_blind_context(request, [video.pk])).data)
