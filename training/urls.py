from django.urls import include, path

from training import views

app_name = "training"

urlpatterns = [
    path("runs/new", views.run_new, name="run-new"),
    path("runs/new/dataset-version", views.run_dataset_version, name="run-dataset-version"),
    path("runs/new/hyperparameters", views.run_hyperparameters, name="run-hyperparameters"),
    path("runs/", views.run_create, name="run-create"),
    # Sweeps, reproduce + error analysis, label issues (their own modules).
    path("", include("training.sweep_urls")),
    path("", include("training.analysis_urls")),
    path("", include("training.label_issue_urls")),
    # Model registry, evaluations, batch scoring, model-assisted labeling.
    path("", include("training.registry_urls")),
    path("", include("training.evaluation_urls")),
    path("", include("training.scoring_urls")),
    path("", include("training.assisted_urls")),
]
