"""Run analysis over REST: reproduce a run, and list its test-split mistakes.

``POST runs/{id}/reproduce`` (admins) queues a copy of the run through
``training.services.run_reproduce`` and answers 201 with the new run; ``GET
runs/{id}/errors`` (the team) reads the run's saved predictions through
``training.selectors.run_errors`` (two queries whatever the number of mistakes).
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from core.api.pagination import MAX_PAGE_SIZE
from core.api.query_params import parse_query
from training import selectors, services
from training.api import serializers as shapes
from training.api.views import RUN_NOT_FOUND, RunApiView, run_schema

DEFAULT_MISTAKES_PAGE = selectors.MISTAKES_PAGE_SIZE


class RunErrorsQuery(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(selectors.MISTAKE_KINDS), required=False,
                                   help_text="fp: only false positives; fn: only false negatives (default: both)")
    order = serializers.ChoiceField(choices=selectors.MistakeOrder.choices, required=False,
                                    default=selectors.MistakeOrder.MOST_CONFIDENT,
                                    help_text="by the probability of the (wrong) class the model chose; ties by aid")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False,
                                     default=DEFAULT_MISTAKES_PAGE,
                                     help_text=f"mistakes per page (at most {MAX_PAGE_SIZE})")
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, default=0)


class MistakeOutput(serializers.Serializer):
    aid = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=list(selectors.MISTAKE_KINDS))
    probability = serializers.FloatField(help_text="predicted probability of the positive class")
    confidence = serializers.FloatField(help_text="probability of the class the model (wrongly) chose")
    version_label = serializers.BooleanField(help_text="the label the dataset version froze (the consensus then)")
    current_label = serializers.BooleanField(allow_null=True,
                                             help_text="the consensus now; null when unlabeled or tied")
    labelers = serializers.IntegerField(help_text="people whose label counts now")
    positive_votes = serializers.IntegerField()
    negative_votes = serializers.IntegerField()
    labelers_disagree = serializers.BooleanField(help_text="some said yes, others no")
    reviewed = serializers.BooleanField(help_text="a reviewer decided the consensus")
    title = serializers.CharField(allow_null=True, help_text="null when the video was deleted since")
    tags = serializers.ListField(child=serializers.CharField())
    uploader = serializers.CharField(allow_blank=True)
    history_url = serializers.CharField(help_text="the video's labeling history page")
    review_url = serializers.CharField(help_text="the review page, searched for this video")

    class Meta:
        ref_name = "RunMistake"


class RunErrorsOutput(serializers.Serializer):
    run = serializers.IntegerField()
    threshold = serializers.FloatField()
    test_rows = serializers.IntegerField()
    false_positives = serializers.IntegerField()
    false_negatives = serializers.IntegerField()
    count = serializers.IntegerField(help_text="mistakes that pass the kind filter (all pages)")
    results = MistakeOutput(many=True)

    class Meta:
        ref_name = "RunErrors"


def _mistake(mistake: selectors.Mistake) -> dict:
    consensus, video = mistake.consensus, mistake.video
    return {
        "aid": mistake.aid, "kind": mistake.kind, "probability": mistake.probability,
        "confidence": mistake.confidence, "version_label": mistake.version_label,
        "current_label": mistake.current_label, "labelers": mistake.labelers,
        "positive_votes": consensus.positive_votes if consensus else 0,
        "negative_votes": consensus.negative_votes if consensus else 0,
        "labelers_disagree": mistake.labelers_disagree, "reviewed": mistake.reviewed,
        "title": video.title if video else None, "tags": video.tag_list if video else [],
        "uploader": video.uploader_name if video else "",
        "history_url": reverse("labeling:video-detail", args=[mistake.aid]),
        "review_url": f"{reverse('labeling:review-list')}?q=av{mistake.aid}",
    }


class RunReproduceApi(RunApiView):
    @run_schema("run_reproduce", "Queue a reproduction of a run (admins)",
                description="A new run in the same experiment with the same dataset version, architecture, "
                            "resolved params (validated by the schema again) and seed; its `origin_run` is this "
                            "run and it is tagged `reproduces`. On the CPU its metrics equal the origin's.",
                request=None,
                responses={201: shapes.RunDetailOutput, 404: RUN_NOT_FOUND,
                           400: OpenApiResponse(description="the run (or its experiment) is deleted, its dataset "
                                                            "version is no longer ready, or its params no longer "
                                                            "pass the schema; nothing queued")})
    def post(self, request, run_id: int):
        reproduction = services.run_reproduce(run_id)
        return Response(self.detail(reproduction.pk), status=status.HTTP_201_CREATED)


class RunErrorsApi(RunApiView):
    @run_schema("run_errors", "A run's test-split mistakes, with their videos and current labels",
                description="False positives and false negatives at the run's threshold, from the predictions "
                            "the run saved (`predictions.npz`), most confident first by default.",
                parameters=[RunErrorsQuery],
                responses={200: RunErrorsOutput,
                           400: OpenApiResponse(description="a bad kind, order, limit or offset"),
                           404: OpenApiResponse(description="no such run, or the run has no predictions (not "
                                                            "finished, or trained before runs saved them)")})
    def get(self, request, run_id: int):
        query = parse_query(request, RunErrorsQuery)
        try:
            errors = selectors.run_errors(run_id, kind=query.get("kind"), order=query["order"],
                                          offset=query["offset"], limit=query["limit"])
        except selectors.RunPredictionsMissing as missing:
            raise exceptions.NotFound(str(missing)) from None
        return Response({
            "run": errors.run.pk, "threshold": errors.threshold, "test_rows": errors.test_rows,
            "false_positives": errors.false_positives, "false_negatives": errors.false_negatives,
            "count": errors.matching, "results": [_mistake(mistake) for mistake in errors.mistakes],
        })
