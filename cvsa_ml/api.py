from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cvsa_ml.health import system_health
from datasets.embedding_registry import EmbeddingRegistryError, load_registry


def embedding_service_health() -> tuple[dict, list[str]]:
    """The ML panel's ``embedding_service`` object and ``available_models`` keys.

    Reads the registry file only (no model is loaded and no provider is called, so the
    probe stays cheap); an invalid registry is reported, not raised.
    """
    try:
        registry = load_registry(settings.CVSA_EMBEDDING_MODELS_FILE)
    except EmbeddingRegistryError as error:
        return {"status": "unhealthy", "service": "embedding_service", "model": None, "dimensions": None,
                "error": str(error)}, []
    default = registry.default
    return {
        "status": "healthy",
        "service": "embedding_service",
        "model": default.key,
        "dimensions": default.dimensions,
        "type": default.type,
        "models": len(registry),
    }, list(registry.models)


class HealthComponentOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField(required=False, help_text="only for logged-in users")


class HealthApi(APIView):
    """Unauthenticated: load balancers and the ML panel probe it.

    One response for both audiences: ``status`` (ok / degraded) and ``components`` for
    operators, plus the ML panel's ``HealthResponse`` fields (``service``,
    ``embedding_service``, ``database``, ``available_models``). Served at
    ``/api/v1/health`` and ``/v1/health``. Anonymous callers get the states only: versions,
    socket paths, worker names and error texts are for logged-in users.
    """

    permission_classes = [permissions.AllowAny]

    class Output(serializers.Serializer):
        status = serializers.ChoiceField(choices=["ok", "degraded"])
        components = serializers.DictField(child=HealthComponentOutput())
        service = serializers.CharField()
        embedding_service = serializers.DictField()
        database = serializers.CharField(help_text='"connected" or "error: <why>"')
        available_models = serializers.ListField(child=serializers.CharField())

        class Meta:
            ref_name = "Health"

    @extend_schema(
        summary="Health of database, pgvector, broker, workers and the embedding registry",
        responses={200: Output, 503: Output},
    )
    def get(self, request):
        health = system_health()
        database = health["components"]["database"]
        embedding_service, available_models = embedding_service_health()
        detailed = request.user.is_authenticated
        health.update({
            "service": "cvsa-ml",
            "embedding_service": embedding_service if detailed else {
                key: value for key, value in embedding_service.items() if key != "error"
            },
            "database": "connected" if database["ok"] else (f"error: {database['detail']}" if detailed else "error"),
            "available_models": available_models,
        })
        if not detailed:
            health["components"] = {name: {"ok": part["ok"]} for name, part in health["components"].items()}
        # Without a database nothing works: 503. A missing worker or broker is "degraded" but serving.
        return Response(health, status=status.HTTP_200_OK if database["ok"] else status.HTTP_503_SERVICE_UNAVAILABLE)
