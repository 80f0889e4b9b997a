"""Run analysis pages under ``/training/`` (namespace ``training``): reproduce, mistakes."""

from django.urls import path

from training import analysis_views

urlpatterns = [
    path("runs/<int:run_id>/reproduce", analysis_views.run_reproduce, name="run-reproduce"),
    path("runs/<int:run_id>/errors", analysis_views.run_errors, name="run-errors"),
]
