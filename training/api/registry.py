"""The model registry over REST: models (list, create, read, change description and gate
rules), their versions (list, register a run), one version (read, change its
description), stage changes, and the history with "which version was in production at
``?at=``".

Thin views: ``training.services`` writes, ``training.registry_selectors`` reads. Reads
for the team, writes for admins (the experiments API's rule). A stale ``lock_version``,
a concurrent promotion and a gate's refusal are 409s whose detail says why (the failing
rule named); an illegal move or bad input is a 400; nothing is written then.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import Conflict, map_exception
from core.api.query_params import parse_query
from datasets.models import DatasetVersion
from experiments.api.serializers import request_errors
from experiments.api.views import ExperimentsPermissions
from training import registry_selectors, services
from training.api.registry_serializers import (
    HistoryOutput,
    HistoryQuery,
    ModelVersionOutput,
    ModelVersionRegisterInput,
    ModelVersionTransitionInput,
    ModelVersionUpdateInput,
    RegisteredModelCreateInput,
    RegisteredModelOutput,
    RegisteredModelUpdateInput,
)
from training.models import RegisteredModel

REGISTRY_TAG = "model registry"
MODEL_NOT_FOUND = "Model not found"
VERSION_NOT_FOUND = "Model version not found"
CONFLICT = OpenApiResponse(description="stale lock_version, a concurrent promotion, or the gate refused (the "
                                       "failing rule named); nothing changed")
BAD_INPUT = OpenApiResponse(description="bad input or an illegal move; nothing written")
NAME_PARAMETER = OpenApiParameter("name", str, OpenApiParameter.PATH, description="the model's name")

# A lost race or a refused gate is the resource's state, not bad input: 409 with the reason.
map_exception(services.RegistryConflict, lambda exc: Conflict(str(exc)))
map_exception(services.GateRefused, lambda exc: Conflict(str(exc)))

#: Service arguments → request fields.
MODEL_FIELDS = {"name": "name", "description": "description", "gate_rules": "gate_rules"}
REGISTER_FIELDS = {"run_id": "run_id", "model_name": "non_field_errors", "description": "description"}
TRANSITION_FIELDS = {"to_stage": "to_stage", "lock_version": "lock_version", "expected_lock_version": "lock_version",
                     "reason": "reason", "gate_dataset_version_id": "gate_dataset_version_id",
                     "dataset_version_id": "gate_dataset_version_id", "version_id": "non_field_errors"}


def registry_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[REGISTRY_TAG], **kwargs)


def _model(name: str) -> RegisteredModel:
    """The model named ``name`` with its counts; ``DoesNotExist`` (404) otherwise."""
    if "\x00" in name:  # PostgreSQL text cannot hold it: no model is named so.
        raise RegisteredModel.DoesNotExist(name)
    return registry_selectors.registered_model_list().get(name=name)


def _version_data(version_id: int) -> dict:
    return ModelVersionOutput(registry_selectors.model_version_get(version_id)).data


class RegisteredModelListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = RegisteredModelOutput

    @registry_schema("registered_model_list", "Registered models by name, with their version counts")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return registry_selectors.registered_model_list()

    @registry_schema("registered_model_create", "Create a registered model (admins)",
                     request=RegisteredModelCreateInput,
                     responses={201: RegisteredModelOutput, 400: BAD_INPUT})
    def post(self, request):
        data = RegisteredModelCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            model = services.registered_model_create(**data.validated_data, user=request.user)
        except DjangoValidationError as error:
            raise request_errors(error, MODEL_FIELDS) from None
        return Response(RegisteredModelOutput(_model(model.name)).data, status=status.HTTP_201_CREATED)


class RegisteredModelDetailApi(ExperimentsPermissions, APIView):
    not_found_detail = MODEL_NOT_FOUND

    @registry_schema("registered_model_retrieve", "One registered model", parameters=[NAME_PARAMETER],
                     responses={200: RegisteredModelOutput, 404: OpenApiResponse(description=MODEL_NOT_FOUND)})
    def get(self, request, name: str):
        return Response(RegisteredModelOutput(_model(name)).data)

    @registry_schema("registered_model_update", "Change a model's description and/or gate rules (admins)",
                     parameters=[NAME_PARAMETER], request=RegisteredModelUpdateInput,
                     responses={200: RegisteredModelOutput, 400: BAD_INPUT,
                                404: OpenApiResponse(description=MODEL_NOT_FOUND)})
    def patch(self, request, name: str):
        model = _model(name)
        data = RegisteredModelUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.registered_model_update(model.pk, description=data.validated_data.get("description"),
                                             gate_rules=data.validated_data.get("gate_rules"))
        except DjangoValidationError as error:
            raise request_errors(error, MODEL_FIELDS) from None
        return Response(RegisteredModelOutput(_model(name)).data)


class ModelVersionListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = ModelVersionOutput
    not_found_detail = MODEL_NOT_FOUND

    @registry_schema("model_version_list", "A model's versions, newest first", parameters=[NAME_PARAMETER],
                     responses={200: ModelVersionOutput(many=True), 404: OpenApiResponse(description=MODEL_NOT_FOUND)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        model = _model(self.kwargs["name"])
        return registry_selectors.model_versions(model).select_related("registered_model")

    @registry_schema("model_version_register",
                     "Register a succeeded run's weights as the model's next version, a candidate (admins)",
                     description="The model is created when no model has this name.",
                     parameters=[NAME_PARAMETER], request=ModelVersionRegisterInput,
                     responses={201: ModelVersionOutput, 400: BAD_INPUT})
    def post(self, request, name: str):
        if "\x00" in name:
            raise request_errors(DjangoValidationError({"model_name": "must not contain NUL characters"}),
                                 REGISTER_FIELDS)
        data = ModelVersionRegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = services.model_version_register(model_name=name, user=request.user, **data.validated_data)
        except DjangoValidationError as error:
            raise request_errors(error, REGISTER_FIELDS) from None
        return Response(_version_data(version.pk), status=status.HTTP_201_CREATED)


class ModelVersionDetailApi(ExperimentsPermissions, APIView):
    not_found_detail = VERSION_NOT_FOUND

    @registry_schema("model_version_retrieve", "One model version",
                     responses={200: ModelVersionOutput, 404: OpenApiResponse(description=VERSION_NOT_FOUND)})
    def get(self, request, version_id: int):
        return Response(_version_data(version_id))

    @registry_schema("model_version_update", "Change a version's description (admins; optimistic lock)",
                     request=ModelVersionUpdateInput,
                     responses={200: ModelVersionOutput, 400: BAD_INPUT,
                                404: OpenApiResponse(description=VERSION_NOT_FOUND),
                                409: OpenApiResponse(description="stale lock_version; nothing changed")})
    def patch(self, request, version_id: int):
        data = ModelVersionUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.model_version_update(version_id, description=data.validated_data["description"],
                                          expected_lock_version=data.validated_data.get("lock_version"))
        except DjangoValidationError as error:
            raise request_errors(error, {"description": "description", "version_id": "non_field_errors"}) from None
        return Response(_version_data(version_id))


class ModelVersionTransitionApi(ExperimentsPermissions, APIView):
    not_found_detail = VERSION_NOT_FOUND

    @registry_schema(
        "model_version_transition", "Move a version to another stage (admins)",
        description="Legal moves: candidate → staging | archived; staging → production | candidate | archived; "
                    "production → staging | archived; archived → candidate. To production runs the model's gate "
                    "on the test split of `gate_dataset_version_id` (default: the version's run's dataset "
                    "version), evaluating the versions it needs now, and archives the previous production version. "
                    "Every move is an audit row (see the model's history).",
        request=ModelVersionTransitionInput,
        responses={200: ModelVersionOutput, 400: BAD_INPUT, 404: OpenApiResponse(description=VERSION_NOT_FOUND),
                   409: CONFLICT},
    )
    def post(self, request, version_id: int):
        data = ModelVersionTransitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        try:
            services.model_version_transition(
                version_id, to_stage=validated["to_stage"], expected_lock_version=validated.get("lock_version"),
                user=request.user, reason=validated["reason"],
                gate_dataset_version_id=validated.get("gate_dataset_version_id"),
            )
        except DjangoValidationError as error:
            raise request_errors(error, TRANSITION_FIELDS) from None
        except DatasetVersion.DoesNotExist:
            raise request_errors(DjangoValidationError({"gate_dataset_version_id": "no such dataset version"}),
                                 TRANSITION_FIELDS) from None
        return Response(_version_data(version_id))


#: Stage changes one history response lists unless ``?limit=`` says otherwise.
HISTORY_PAGE_SIZE = 100


class ModelHistoryApi(ExperimentsPermissions, APIView):
    not_found_detail = MODEL_NOT_FOUND

    @registry_schema(
        "registered_model_history", "A model's stage changes, and which version was in production at a time",
        parameters=[NAME_PARAMETER, HistoryQuery],
        responses={200: HistoryOutput, 400: BAD_INPUT, 404: OpenApiResponse(description=MODEL_NOT_FOUND)},
    )
    def get(self, request, name: str):
        query = parse_query(request, HistoryQuery)
        at = query.get("at")
        model = _model(name)
        if at is None:
            production = registry_selectors.production_version(model.name)
        else:
            production = registry_selectors.production_version_at(model, at)
        if production is not None:
            production = registry_selectors.model_version_get(production.pk)
        transitions = registry_selectors.model_history(model)
        offset = query.get("offset", 0)
        page = transitions[offset:offset + query.get("limit", HISTORY_PAGE_SIZE)]
        return Response(HistoryOutput({
            "model": model.name, "at": at, "production_version": production,
            "transition_count": transitions.count(), "transitions": page,
        }).data)

