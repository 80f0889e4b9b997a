"""Predictions over REST: ``POST /api/v1/predict`` (any team member, labelers too) scores
archived videos by aid or raw ``{title, description, tags}`` items with the production
version of a model (or a named version of any stage); batch scoring jobs (start, list,
read, cancel: admins start and cancel, the team reads).

Thin views: ``training.services`` scores and writes, ``training.prediction_cache`` says
which version serves (weights loaded once per process; a promotion is served from the
next request on). Bad input is a 400 naming it, with nothing written; an embedding
provider that fails, or a weights file missing or changed on disk, is a 503.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.bounds import bigint_field
from core.api.errors import ServiceUnavailable, map_exception
from core.api.query_params import parse_query
from core.permissions import HasTeamRole
from datasets.embedding_providers import EmbeddingProviderError
from experiments.api.views import ExperimentsPermissions
from training import scoring_selectors, services
from training.models import JobStatus
from training.prediction_cache import prediction_cache
from training.served_models import WeightsFileError
from training.services.scoring import MAX_FILTER_AIDS, MAX_FILTER_SEARCH_LENGTH, MAX_PREDICT_ITEMS

PREDICT_TAG = "predictions"
JOB_NOT_FOUND = OpenApiResponse(description="Scoring job not found")
MAX_TEXT_LENGTH = 50_000

# The server's side, not the request: the provider is down, or the weights file is gone.
map_exception(EmbeddingProviderError, lambda exc: ServiceUnavailable(f"embedding provider failed: {exc}"))
map_exception(WeightsFileError, lambda exc: ServiceUnavailable(f"model weights unavailable: {exc}"))


def predict_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[PREDICT_TAG], **kwargs)


# --- shapes -------------------------------------------------------------------------------


class PredictItemInput(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_TEXT_LENGTH)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_TEXT_LENGTH)
    tags = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_TEXT_LENGTH,
                                 help_text="comma separated, as upstream")

    class Meta:
        ref_name = "PredictItem"


class PredictInput(serializers.Serializer):
    aids = serializers.ListField(child=bigint_field(min_value=1), required=False, min_length=1,
                                 max_length=MAX_PREDICT_ITEMS, help_text="archived videos to score")
    items = PredictItemInput(many=True, required=False, help_text="raw videos to score (need not be archived)")
    model = serializers.CharField(required=False, max_length=200,
                                  help_text="a registered model's name (default: the only model with a production "
                                            "version); its production version scores")
    version = bigint_field(min_value=1, required=False,
                           help_text="a model version id (any stage) to score with instead of the production one")

    class Meta:
        ref_name = "PredictRequest"

    def validate_items(self, items):
        if not items:
            raise serializers.ValidationError("must not be empty")
        if len(items) > MAX_PREDICT_ITEMS:
            raise serializers.ValidationError(f"at most {MAX_PREDICT_ITEMS} items at a time (got {len(items)})")
        return items

    def validate(self, attrs):
        if ("aids" in attrs) == ("items" in attrs):
            raise serializers.ValidationError("give either aids or items (exactly one of them)")
        return attrs


class PredictionOutput(serializers.Serializer):
    aid = serializers.IntegerField(required=False, help_text="the video's aid (requests by aids only)")
    probability = serializers.FloatField(help_text="probability of yes")
    label = serializers.BooleanField(help_text="probability ≥ the version's threshold")

    class Meta:
        ref_name = "Prediction"


class PredictOutput(serializers.Serializer):
    model = serializers.CharField(help_text="the registered model's name")
    version = serializers.IntegerField(help_text="the id of the model version that scored")
    version_number = serializers.IntegerField(help_text="its number within the model")
    threshold = serializers.FloatField()
    predictions = PredictionOutput(many=True, help_text="in the order of the request")

    class Meta:
        ref_name = "PredictResponse"


class ScoringFilterInput(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=MAX_FILTER_SEARCH_LENGTH,
                                   help_text="videos whose title contains this (any case)")
    only_unscored = serializers.BooleanField(required=False, default=False,
                                             help_text="only videos this version has not scored yet")
    aids = serializers.ListField(child=bigint_field(min_value=1), required=False, min_length=1,
                                 max_length=MAX_FILTER_AIDS, help_text="only these videos")

    class Meta:
        ref_name = "ScoringFilter"


class ScoringJobListQuery(serializers.Serializer):
    version = bigint_field(min_value=1, required=False, help_text="only this model version's jobs")

    class Meta:
        ref_name = "ScoringJobListQuery"


class ScoringJobCreateInput(serializers.Serializer):
    version = bigint_field(min_value=1, help_text="the model version id that scores")
    video_filter = ScoringFilterInput(required=False, help_text="default: every video")

    class Meta:
        ref_name = "ScoringJobCreateRequest"


class ScoringJobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(source="model_version_id")
    model = serializers.CharField(source="model_version.registered_model.name")
    version_number = serializers.IntegerField(source="model_version.number")
    video_filter = serializers.DictField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    total = serializers.IntegerField(help_text="videos to score (counted when the job starts)")
    done = serializers.IntegerField()
    embedded = serializers.IntegerField(help_text="texts embedded because no vector was stored")
    message = serializers.CharField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ScoringJob"


# --- views --------------------------------------------------------------------------------


class PredictApi(APIView):
    permission_classes = [IsAuthenticated, HasTeamRole]

    @predict_schema(
        "predict", "Score videos by aid, or raw texts, with a model's production version (team)",
        description="Exactly one of `aids` (archived videos) or `items` (`{title, description, tags}`), at most "
                    f"{MAX_PREDICT_ITEMS}. The text is composed as the version's training data was, and its "
                    "vector looked up in the embedding store; a text with no stored vector is embedded once with "
                    "the version's embedding model and stored. Predictions are not stored and are never labels.",
        request=PredictInput,
        responses={200: PredictOutput,
                   400: OpenApiResponse(description="bad input (unknown aids or model, no production version, "
                                                    "too many items); nothing embedded"),
                   503: OpenApiResponse(description="the embedding provider failed, or the weights file is "
                                                    "missing or changed")})
    def post(self, request):
        data = PredictInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        served = _served_version(validated.get("model"), validated.get("version"))
        if "aids" in validated:
            scored = services.predict_aids(served, validated["aids"])
        else:
            scored = services.predict_items(served, [dict(item) for item in validated["items"]])
        predictions = [
            {"aid": row.aid, "probability": row.probability, "label": row.label} if row.aid is not None
            else {"probability": row.probability, "label": row.label}
            for row in scored
        ]
        return Response({"model": served.model_name, "version": served.version_id, "version_number": served.number,
                         "threshold": served.threshold, "predictions": predictions})


def _served_version(model_name: str | None, version_id: int | None):
    if version_id is None:
        return prediction_cache.production(model_name)
    served = prediction_cache.served(version_id)
    if model_name is not None and served.model_name != model_name:
        raise serializers.ValidationError(
            {"version": f"model version {version_id} is version {served.number} of {served.model_name!r}, "
                        f"not of {model_name!r}"})
    return served


class ScoringJobListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = ScoringJobOutput

    def get_queryset(self):
        return scoring_selectors.scoring_job_list(version_id=parse_query(self.request, ScoringJobListQuery).get("version"))

    @predict_schema("scoring_job_list", "Batch scoring jobs, newest first (team)", parameters=[ScoringJobListQuery],
                    responses={200: ScoringJobOutput(many=True), 400: OpenApiResponse(description="bad query")})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @predict_schema(
        "scoring_job_create", "Score all or filtered videos with a model version and store the predictions (admins)",
        description="A job on the `training` queue: videos are scored in chunks (texts with no stored vector are "
                    "embedded first, once) and their probabilities stored as predictions of the version (one per "
                    "video, replaced when scored again), never as labels. Poll the job for `done` / `total`.",
        request=ScoringJobCreateInput,
        responses={201: ScoringJobOutput,
                   400: OpenApiResponse(description="unknown version, missing weights or a bad filter; nothing "
                                                    "written")})
    def post(self, request):
        data = ScoringJobCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.scoring_job_create(
            version_id=data.validated_data["version"], video_filter=data.validated_data.get("video_filter"),
            user=request.user,
        )
        return Response(ScoringJobOutput(scoring_selectors.scoring_job_get(job.pk)).data,
                        status=status.HTTP_201_CREATED)


class ScoringJobApiView(ExperimentsPermissions, APIView):
    not_found_detail = "Scoring job not found"


class ScoringJobDetailApi(ScoringJobApiView):
    @predict_schema("scoring_job_retrieve", "One scoring job: status and progress (team)",
                    responses={200: ScoringJobOutput, 404: JOB_NOT_FOUND})
    def get(self, request, job_id: int):
        return Response(ScoringJobOutput(scoring_selectors.scoring_job_get(job_id)).data)


class ScoringJobCancelApi(ScoringJobApiView):
    @predict_schema("scoring_job_cancel", "Cancel a queued or running scoring job (admins)", request=None,
                    responses={200: ScoringJobOutput, 404: JOB_NOT_FOUND,
                               400: OpenApiResponse(description="the job has already finished")})
    def post(self, request, job_id: int):
        services.scoring_job_cancel(job_id)
        return Response(ScoringJobOutput(scoring_selectors.scoring_job_get(job_id)).data)
