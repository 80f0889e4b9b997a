"""The batch-scoring panel of a version's page: the team sees the version's jobs and
prediction count; admins start a job (all / not yet scored / title search) and cancel
one; the panel polls while a job is active; labelers cannot start or cancel."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.training.registry_factories import registered_version
from training import services
from training.models import JobStatus, ScoringJob
from training.services import scoring

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"


@pytest.fixture
def version():
    return registered_version("vocaloid")


@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    monkeypatch.setattr(scoring, "scoring_job_enqueue", lambda job_id, task_id, claim_attempt=None: sent.append(job_id))
    return sent


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("ada", group="admins"))
    return client


def test_the_panel_shows_jobs_and_polls_while_one_is_active(logged_in_client, version):
    services.scoring_job_create(version_id=version.pk, video_filter={"search": "miku"}, enqueue=False)

    response = logged_in_client.get(reverse("training:scoring-panel", args=[version.pk]), **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-polling="true"' in html and 'hx-trigger="every 2s"' in html
    assert "title contains “miku”" in html and "0</strong> videos scored" in html
    assert 'data-testid="scoring-form"' not in html  # a labeler cannot start jobs


def test_an_admin_starts_a_search_job_and_cancels_it(admin_client, version, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("training:scoring-job-start", args=[version.pk]),
                                     {"mode": "search", "search": "Miku"}, **HTMX)

    job = ScoringJob.objects.get()
    assert response.status_code == 200 and f"Queued scoring job {job.pk}." in response.content.decode()
    assert job.video_filter == {"search": "Miku"} and enqueued == [job.pk]

    response = admin_client.post(reverse("training:scoring-job-cancel", args=[job.pk]), **HTMX)
    job.refresh_from_db()
    assert response.status_code == 200 and job.status == JobStatus.CANCELLED
    assert 'data-polling="false"' in response.content.decode()


def test_a_search_without_words_is_a_400_and_writes_nothing(admin_client, version, enqueued):
    response = admin_client.post(reverse("training:scoring-job-start", args=[version.pk]), {"mode": "search"}, **HTMX)

    assert response.status_code == 400 and "Type words of the titles to score." in response.content.decode()
    assert not ScoringJob.objects.exists()


def test_a_labeler_cannot_start_or_cancel(logged_in_client, version, enqueued):
    job = services.scoring_job_create(version_id=version.pk, enqueue=False)

    assert logged_in_client.post(reverse("training:scoring-job-start", args=[version.pk]), {"mode": "all"},
                                 **HTMX).status_code == 403
    assert logged_in_client.post(reverse("training:scoring-job-cancel", args=[job.pk]), **HTMX).status_code == 403
    assert ScoringJob.objects.count() == 1 and ScoringJob.objects.get().status == JobStatus.QUEUED
