"""API routes, mounted by ``cvsa_ml.urls`` under ``/api/v1/`` (namespace ``api-v1``)."""

urlpatterns: list = []
