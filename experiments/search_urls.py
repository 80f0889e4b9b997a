"""The run search page and its CSV export (included by ``experiments.urls``)."""

from django.urls import path

from experiments import search_views

urlpatterns = [
    path("runs/", search_views.run_search, name="run-search"),
    path("runs.csv", search_views.run_search_csv, name="run-search-csv"),
]
