"""Pages of the model registry under ``/training/`` (included by ``training.urls``)."""

from django.urls import path

from training import registry_views

urlpatterns = [
    path("models/", registry_views.registry, name="registry"),
    path("models/create", registry_views.registered_model_create, name="registered-model-create"),
    path("models/register", registry_views.model_register, name="model-register"),
    path("models/<str:name>/", registry_views.registered_model, name="registered-model"),
    path("models/<str:name>/gates", registry_views.registered_model_gates, name="registered-model-gates"),
    path("models/<str:name>/versions/<int:number>/", registry_views.model_version, name="model-version"),
    path("models/<str:name>/versions/<int:number>/transition", registry_views.model_version_transition,
         name="model-version-transition"),
]
