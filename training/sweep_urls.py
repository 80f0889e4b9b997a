"""Sweep pages under ``/training/`` (included by ``training.urls``)."""

from django.urls import path

from training import sweep_views

urlpatterns = [
    path("sweeps/new", sweep_views.sweep_new, name="sweep-new"),
    path("sweeps/", sweep_views.sweep_create, name="sweep-create"),
    path("sweeps/<int:sweep_id>/", sweep_views.sweep_detail, name="sweep-detail"),
    path("sweeps/<int:sweep_id>/live", sweep_views.sweep_live, name="sweep-live"),
    path("sweeps/<int:sweep_id>/cancel", sweep_views.sweep_cancel, name="sweep-cancel"),
    path("experiments/<int:experiment_id>/sweeps", sweep_views.sweep_list, name="sweep-list"),
]
