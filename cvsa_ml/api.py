from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cvsa_ml.health import system_health


class HealthApi(APIView):
    """Unauthenticated: load balancers and the ML panel probe it."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(summary="Health of database, pgvector, broker and workers")
    def get(self, request):
        health = system_health()
        # Without a database nothing works: 503. A missing worker or broker is "degraded" but serving.
        database_ok = health["components"]["database"]["ok"]
        return Response(health, status=status.HTTP_200_OK if database_ok else status.HTTP_503_SERVICE_UNAVAILABLE)
