"""The compare page of a selection of runs and the JSON of its curves (under /experiments/)."""

from django.urls import path

from experiments import compare_views

urlpatterns = [
    path("compare", compare_views.compare, name="compare"),
    path("compare/series.json", compare_views.compare_series, name="compare-series"),
]
