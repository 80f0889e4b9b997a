from django.urls import include, path

from experiments import views

app_name = "experiments"

urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("new", views.experiment_create, name="create"),
    path("<int:experiment_id>/", views.experiment_detail, name="detail"),
    path("<int:experiment_id>/edit", views.experiment_edit, name="edit"),
    path("<int:experiment_id>/delete", views.experiment_delete, name="delete"),
    path("<int:experiment_id>/restore", views.experiment_restore, name="restore"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/live", views.run_live, name="run-live"),
    path("runs/<int:run_id>/metrics.json", views.run_metrics, name="run-metrics"),
    path("runs/<int:run_id>/artifacts/<path:path>", views.run_artifact_download, name="run-artifact"),
    path("runs/<int:run_id>/cancel", views.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/delete", views.run_delete, name="run-delete"),
    path("runs/<int:run_id>/restore", views.run_restore, name="run-restore"),
    # Run search and comparison (their own modules: experiments.search_urls, compare_urls).
    path("", include("experiments.search_urls")),
    path("", include("experiments.compare_urls")),
]
