"""Augmentation of a version's train split over the API: queue a task, read the counts.

Thin: the serializer checks shapes, ``services.augmentation`` checks the params and the
version (400 naming the problem; nothing written), selectors read. Reads need a team
role; queueing needs ``can_manage_datasets`` (admins), as builds do.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from core.api.path_params import uuid_or_not_found
from datasets.augmentation import DEFAULT_COPIES, DEFAULT_NOISE_RATE
from datasets.augmentation_selectors import augmentation_tasks, augmented_counts
from datasets.api.views import PanelApiView
from datasets.models import AugmentationKind
from datasets.selectors import dataset_version_get
from datasets.services.augmentation import augmentation_queue

AUGMENTATION_TAG = "augmentation"


class AugmentInput(serializers.Serializer):
    kinds = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False,
        help_text=f"default: every kind ({', '.join(AugmentationKind.values)})",
    )
    copies = serializers.JSONField(required=False, help_text=f"character-noise copies per video, 1-5 "
                                                             f"(default {DEFAULT_COPIES})")
    noise_rate = serializers.JSONField(required=False, help_text=f"share of characters edited, 0.01-0.3 "
                                                                 f"(default {DEFAULT_NOISE_RATE})")
    seed = serializers.JSONField(required=False, help_text="default 0")


class AugmentTaskOutput(serializers.Serializer):
    task_id = serializers.UUIDField(source="pk")
    status = serializers.CharField()
    params = serializers.DictField()
    result = serializers.DictField(allow_null=True)
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class AugmentApi(PanelApiView):
    manage_methods = frozenset({"POST"})
    not_found_detail = "Dataset not found"

    @extend_schema(operation_id="dataset_augment", tags=[AUGMENTATION_TAG], request=AugmentInput,
                   summary="Queue an augmentation task: perturbed copies of the train members' texts, embedded",
                   responses={202: AugmentTaskOutput,
                              400: OpenApiResponse(description="bad params, version not ready or busy; nothing "
                                                               "written"),
                              404: OpenApiResponse(description="Dataset not found")})
    def post(self, request, dataset_id: str):
        version_id = uuid_or_not_found(dataset_id)
        serializer = AugmentInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = augmentation_queue(version_id=version_id, params=dict(serializer.validated_data), user=request.user)
        return Response(AugmentTaskOutput(task).data, status=status.HTTP_202_ACCEPTED)


class AugmentedApi(PanelApiView):
    not_found_detail = "Dataset not found"

    @extend_schema(operation_id="dataset_augmented", tags=[AUGMENTATION_TAG],
                   summary="A version's augmented train rows per kind, and its latest augmentation tasks",
                   responses={200: OpenApiResponse(description="counts (per kind), total, tasks"),
                              404: OpenApiResponse(description="Dataset not found")})
    def get(self, request, dataset_id: str):
        version = dataset_version_get(uuid_or_not_found(dataset_id))
        counts = augmented_counts(version.pk)
        return Response({
            "dataset_id": str(version.pk),
            "counts": counts,
            "total": sum(counts.values()),
            "tasks": AugmentTaskOutput(augmentation_tasks(version.pk), many=True).data,
        })
