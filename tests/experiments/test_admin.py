"""The admin: read-mostly lists and pages, soft delete / restore through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from experiments.models import Experiment, Run, RunStatus
from tests.experiments.factories import ExperimentFactory, make_runs, running_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-1")
    client.force_login(user)
    return client


def test_changelists_filters_and_change_pages_load(admin_client_logged_in):
    experiment = ExperimentFactory(name="Wider MLP")
    run = make_runs(experiment, 2, architecture_key="logreg")[0]
    for url in [
        "/admin/experiments/experiment/",
        "/admin/experiments/experiment/?deleted=yes",
        f"/admin/experiments/experiment/{experiment.pk}/change/",
        "/admin/experiments/run/",
        "/admin/experiments/run/?status__exact=succeeded&architecture_key__exact=logreg",
        "/admin/experiments/run/?q=bulk",
        f"/admin/experiments/run/{run.pk}/change/",
    ]:
        response = admin_client_logged_in.get(url)
        assert response.status_code == 200, url
    page = admin_client_logged_in.get("/admin/experiments/run/?architecture_key__exact=mlp").content.decode()
    assert "bulk-0" not in page
    detail = admin_client_logged_in.get(f"/admin/experiments/run/{run.pk}/change/").content.decode()
    assert "val_f1" in detail and "lr" in detail  # summaries and params inline


def test_rows_cannot_be_added_or_edited_in_the_admin(admin_client_logged_in):
    experiment = ExperimentFactory()
    assert admin_client_logged_in.get("/admin/experiments/run/add/").status_code == 403
    response = admin_client_logged_in.post(f"/admin/experiments/experiment/{experiment.pk}/change/", {"name": "x"})
    assert response.status_code == 403
    assert Experiment.objects.get(pk=experiment.pk).name == experiment.name


def test_soft_delete_action_goes_through_the_service_and_reports_refusals(admin_client_logged_in):
    busy = running_run().experiment
    idle = ExperimentFactory()
    response = admin_client_logged_in.post(
        "/admin/experiments/experiment/",
        {"action": "soft_delete", "_selected_action": [busy.pk, idle.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "queued or running run(s); cancel them first" in page and "Deleted 1 row(s)." in page
    assert list(Experiment.objects.filter(deleted_at__isnull=False).values_list("pk", flat=True)) == [idle.pk]
    admin_client_logged_in.post("/admin/experiments/experiment/", {"action": "restore", "_selected_action": [idle.pk]})
    assert not Experiment.objects.filter(deleted_at__isnull=False).exists()
    assert Run.objects.get(experiment=busy).status == RunStatus.RUNNING
