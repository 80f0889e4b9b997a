from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("runs/new", views.run_new, name="run-new"),
    path("runs/new/dataset-version", views.run_dataset_version, name="run-dataset-version"),
    path("runs/new/hyperparameters", views.run_hyperparameters, name="run-hyperparameters"),
    path("runs/", views.run_create, name="run-create"),
]
