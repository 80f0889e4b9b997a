"""Label-issue scans: out-of-fold probabilities ranked by cleanlab find planted flipped
labels; the scan is a job (claim → folds → issues in one write → succeeded; cancel;
sweep); bad input is refused with the field named and writes nothing; the pages and
the API read a scan's issues in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core import jobs
from datasets.models import DatasetVersionItem
from tests.experiments.factories import ExperimentFactory
from tests.training.factories import separable_dataset_version
from training import services
from training.label_issues import FoldDone
from training.models import JobStatus, LabelIssue, LabelIssueScan
from training.services import label_issues as scan_service

pytestmark = pytest.mark.django_db

#: Small and fast, yet a model that learns the separable clouds in a few epochs.
FAST_MLP = {"hidden_sizes": "16", "epochs": 15, "batch_size": 32, "learning_rate": 0.01, "seed": 7}
FLIPPED = 20
#: For the job tests, where only the mechanism matters.
QUICK_MLP = {**FAST_MLP, "epochs": 3}


class StepClock:
    """Every reading is a second later: each ``should_stop`` writes a heartbeat."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[tuple[int, str, int | None]] = []
    monkeypatch.setattr(
        scan_service, "label_issue_scan_enqueue",
        lambda scan_id, celery_task_id, claim_attempt=None: sent.append((scan_id, celery_task_id, claim_attempt)),
    )
    return sent


def flip_labels(version, count: int, *, seed: int = 1) -> set[int]:
    """Flip the label of ``count`` items of ``version`` (chosen by ``seed``); their video ids."""
    items = list(DatasetVersionItem.objects.filter(version=version).order_by("video_id"))
    chosen = np.random.default_rng(seed).choice(len(items), count, replace=False)
    flipped = [items[index] for index in chosen]
    for item in flipped:
        item.label = not item.label
    DatasetVersionItem.objects.bulk_update(flipped, ["label"])
    return {item.video_id for item in flipped}


def queue_scan(version, admin, **overrides) -> LabelIssueScan:
    arguments = {"dataset_version_id": version.pk, "architecture_key": "mlp", "hyperparameters": QUICK_MLP,
                 "folds": 5, "user": admin, "enqueue": False, **overrides}
    return services.label_issue_scan_create(**arguments)


def test_the_ranking_puts_planted_flipped_labels_at_the_top(admin):
    version = separable_dataset_version(rows=300, dimensions=8, seed=3)
    flipped = flip_labels(version, FLIPPED)
    scan = queue_scan(version, admin, hyperparameters=FAST_MLP)

    scan = services.label_issue_scan_run(scan.pk, device="cpu")

    assert scan.status == JobStatus.SUCCEEDED, scan.error
    assert scan.folds_done == 5 and scan.finished_at is not None
    issues = list(LabelIssue.objects.filter(scan=scan).order_by("rank"))
    assert scan.issue_count == len(issues) > 0
    assert [issue.rank for issue in issues] == list(range(1, len(issues) + 1))
    top = {issue.video_id for issue in issues[:40]}
    assert len(top & flipped) >= 0.8 * FLIPPED
    labels = dict(DatasetVersionItem.objects.filter(version=version).values_list("video_id", "label"))
    for issue in issues:
        assert issue.given_label == labels[issue.video_id]
        assert 0.0 <= issue.probability <= 1.0
    # Most likely wrong first: the label quality never decreases down the ranking.
    qualities = [issue.label_quality for issue in issues]
    assert qualities == sorted(qualities)


def test_each_fold_writes_its_progress(admin):
    version = separable_dataset_version(rows=40, dimensions=4, seed=1)
    scan = queue_scan(version, admin, folds=3)
    seen: list[tuple[int, int, str]] = []

    def on_fold(done: FoldDone) -> None:
        row = LabelIssueScan.objects.get(pk=scan.pk)
        seen.append((done.fold, row.folds_done, row.message))

    services.label_issue_scan_run(scan.pk, device="cpu", on_fold=on_fold)

    assert [(fold, done) for fold, done, _ in seen] == [(1, 1), (2, 2), (3, 3)]
    assert seen[0][2].startswith("fold 1 of 3 done") and "ranking with cleanlab" in seen[-1][2]
    assert LabelIssueScan.objects.get(pk=scan.pk).status == JobStatus.SUCCEEDED


def test_a_scan_from_a_run_takes_its_architecture_params_and_version(admin):
    version = separable_dataset_version(rows=40, dimensions=4)
    experiment = ExperimentFactory(default_dataset_version=version)
    run = services.run_queue(experiment_id=experiment.pk, architecture_key="logreg",
                             hyperparameters={"epochs": 3, "learning_rate": 0.05, "seed": 9}, enqueue=False)

    scan = services.label_issue_scan_create(run_id=run.pk, hyperparameters={"epochs": 4}, folds=4, user=admin,
                                            enqueue=False)

    assert scan.source_run_id == run.pk and scan.dataset_version_id == version.pk
    assert scan.architecture_key == "logreg" and scan.folds == 4 and scan.status == JobStatus.QUEUED
    assert scan.hyperparameters["epochs"] == 4  # the override
    assert scan.hyperparameters["learning_rate"] == 0.05 and scan.hyperparameters["seed"] == 9


def test_create_queues_the_task_once_committed(admin, enqueued, django_capture_on_commit_callbacks):
    version = separable_dataset_version(rows=20, dimensions=4)

    with django_capture_on_commit_callbacks(execute=True):
        scan = queue_scan(version, admin, enqueue=True, folds=2)

    assert enqueued == [(scan.pk, scan.celery_task_id, None)]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"architecture_key": "forest"}, "architecture", "unknown architecture"),
    ({"architecture_key": None}, "architecture", "required when no run_id"),
    ({"folds": 1}, "folds", "from 2 to 20"),
    ({"folds": 21}, "folds", "from 2 to 20"),
    ({"folds": 11}, "folds", "at least 11 rows of each class"),
    ({"hyperparameters": {"learning_rate": -1}}, "learning_rate", ""),
    ({"hyperparameters": ["epochs"]}, "hyperparameters", "must be an object"),
    ({"run_id": 987654321}, "run_id", "does not exist"),
    ({"dataset_version_id": "00000000-0000-0000-0000-000000000000"}, "dataset_version_id", "does not exist"),
])
def test_bad_input_names_the_field_and_writes_nothing(admin, overrides, field, message):
    version = separable_dataset_version(rows=20, dimensions=4)  # 10 rows of each class

    with pytest.raises(ValidationError) as raised:
        queue_scan(version, admin, **overrides)

    assert field in raised.value.message_dict
    assert message in " ".join(raised.value.message_dict[field])
    assert LabelIssueScan.objects.count() == 0


def test_only_admins_start_scans(make_user):
    version = separable_dataset_version(rows=20, dimensions=4)

    with pytest.raises(PermissionDenied):
        queue_scan(version, make_user("rita", group="reviewers"))
    assert LabelIssueScan.objects.count() == 0


def test_a_cancelled_queued_scan_never_runs(admin):
    scan = queue_scan(separable_dataset_version(rows=20, dimensions=4), admin, folds=2)

    services.label_issue_scan_cancel(scan.pk)
    scan = services.label_issue_scan_run(scan.pk, device="cpu")

    assert scan.status == JobStatus.CANCELLED and scan.folds_done == 0
    assert not LabelIssue.objects.exists()
    with pytest.raises(ValidationError, match="only a queued or running scan"):
        services.label_issue_scan_cancel(scan.pk)


def test_a_cancel_while_running_stops_it_and_writes_no_issues(admin):
    scan = queue_scan(separable_dataset_version(rows=40, dimensions=4), admin, folds=4)

    def cancel_after_the_second_fold(done: FoldDone) -> None:
        if done.fold == 2:
            services.label_issue_scan_cancel(scan.pk)

    scan = services.label_issue_scan_run(scan.pk, device="cpu", clock=StepClock(), on_fold=cancel_after_the_second_fold)

    assert scan.status == JobStatus.CANCELLED and scan.folds_done == 2 and scan.issue_count is None
    assert not LabelIssue.objects.exists()


def test_a_bad_stored_config_fails_the_scan_with_the_field_named(admin):
    scan = queue_scan(separable_dataset_version(rows=20, dimensions=4), admin, folds=2)
    LabelIssueScan.objects.filter(pk=scan.pk).update(hyperparameters={"learning_rate": -1})

    scan = services.label_issue_scan_run(scan.pk, device="cpu")

    assert scan.status == JobStatus.FAILED and scan.error.startswith("learning_rate:")
    assert not LabelIssue.objects.exists()


def test_the_celery_task_runs_the_scan(admin):
    from training.tasks import label_issue_scan

    scan = queue_scan(separable_dataset_version(rows=30, dimensions=4), admin, folds=3)

    result = label_issue_scan.apply(args=[scan.pk]).get()

    scan.refresh_from_db()
    assert result == {"scan_id": scan.pk, "status": "succeeded", "issue_count": scan.issue_count, "error": None}
    # Idempotent: a second delivery finds it finished and leaves it.
    assert label_issue_scan.apply(args=[scan.pk]).get()["status"] == "succeeded"
    assert LabelIssue.objects.filter(scan=scan).count() == scan.issue_count


# --- the sweeper --------------------------------------------------------------------------


def running_with_dead_worker(scan: LabelIssueScan, *, minutes_silent: int) -> LabelIssueScan:
    claim = jobs.job_claim(services.LABEL_ISSUE_SCAN_JOB, scan.pk)
    jobs.job_lock_release(services.LABEL_ISSUE_SCAN_JOB, scan.pk)
    LabelIssueScan.objects.filter(pk=scan.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=minutes_silent))
    assert claim.worker_starts == 1
    return LabelIssueScan.objects.get(pk=scan.pk)


def test_a_scan_whose_worker_died_is_requeued_and_the_next_worker_finishes_it(
    admin, enqueued, django_capture_on_commit_callbacks
):
    scan = queue_scan(separable_dataset_version(rows=30, dimensions=4), admin, folds=3)
    stale = running_with_dead_worker(scan, minutes_silent=10)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.label_issue_scans_mark_stale(older_than=timedelta(minutes=5)) == 1

    scan.refresh_from_db()
    assert scan.status == JobStatus.RUNNING and scan.worker_starts == 2 and scan.attempts == stale.attempts + 1
    assert scan.message.startswith("re-queued")
    assert enqueued == [(scan.pk, scan.celery_task_id, scan.attempts)]
    # The handed-over message takes exactly that attempt over, and finishes the scan.
    scan = services.label_issue_scan_run(scan.pk, celery_task_id=scan.celery_task_id, claim_attempt=scan.attempts,
                                         device="cpu")
    assert scan.status == JobStatus.SUCCEEDED and scan.worker_starts == 2
    assert LabelIssue.objects.filter(scan=scan).count() == scan.issue_count


def test_a_scan_that_used_up_its_attempts_is_failed(admin, enqueued, settings):
    settings.CVSA_JOB_MAX_ATTEMPTS = 1
    scan = queue_scan(separable_dataset_version(rows=20, dimensions=4), admin, folds=2)
    running_with_dead_worker(scan, minutes_silent=10)

    assert services.label_issue_scans_mark_stale(older_than=timedelta(minutes=5)) == 1

    scan.refresh_from_db()
    assert scan.status == JobStatus.FAILED and enqueued == []
    assert scan.error.startswith("worker lost (no heartbeat since ") and "1 of 1 attempts" in scan.error


def test_a_queued_scan_whose_message_was_lost_is_failed_and_live_ones_are_left(admin, enqueued):
    version = separable_dataset_version(rows=20, dimensions=4)
    lost, live = queue_scan(version, admin, folds=2), queue_scan(version, admin, folds=2)
    LabelIssueScan.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(days=2))
    running = queue_scan(version, admin, folds=2)
    jobs.job_claim(services.LABEL_ISSUE_SCAN_JOB, running.pk)

    assert services.label_issue_scans_mark_stale(older_than=timedelta(minutes=5),
                                                 pending_older_than=timedelta(hours=1)) == 1

    statuses = dict(LabelIssueScan.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: JobStatus.FAILED, live.pk: JobStatus.QUEUED, running.pk: JobStatus.RUNNING}
    assert LabelIssueScan.objects.get(pk=lost.pk).error.startswith("never started")
    jobs.job_lock_release(services.LABEL_ISSUE_SCAN_JOB, running.pk)


# --- pages ---------------------------------------------------------------------------------


def succeeded_scan(version, *, issues: int, user=None) -> LabelIssueScan:
    """A finished scan of ``version`` whose first ``issues`` items are its issues."""
    scan = LabelIssueScan.objects.create(
        dataset_version=version, architecture_key="logreg", hyperparameters={"seed": 0}, folds=2,
        status=JobStatus.SUCCEEDED, folds_done=2, issue_count=issues, created_by=user, finished_at=timezone.now(),
    )
    items = list(version.items.order_by("video__aid").values_list("video_id", "label")[:issues])
    LabelIssue.objects.bulk_create([
        LabelIssue(scan=scan, video_id=video_id, given_label=label, probability=0.2, label_quality=rank / 1000,
                   rank=rank)
        for rank, (video_id, label) in enumerate(items, start=1)
    ])
    return scan


HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_form_from_a_run_names_the_run_and_queues_a_scan_of_it(client, admin, enqueued,
                                                                    django_capture_on_commit_callbacks):
    version = separable_dataset_version(rows=20, dimensions=4)
    experiment = ExperimentFactory(default_dataset_version=version)
    run = services.run_queue(experiment_id=experiment.pk, architecture_key="logreg", enqueue=False)
    client.force_login(admin)

    form = client.get(f"/training/label-issues/new?run={run.pk}").content.decode()
    assert 'data-testid="from-run"' in form and run.name in form
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/training/label-issues/new", {"run": run.pk, "dataset_version": str(version.pk),
                                                              "architecture": "", "folds": "3",
                                                              "hyperparameters": '{"epochs": 2}'})

    scan = LabelIssueScan.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/label-issues/{scan.pk}/"
    assert scan.source_run_id == run.pk and scan.folds == 3 and scan.hyperparameters["epochs"] == 2
    assert enqueued == [(scan.pk, scan.celery_task_id, None)]


@pytest.mark.parametrize(("data", "shown"), [
    ({"architecture": "mlp", "folds": "1"}, "greater than or equal to 2"),
    ({"architecture": "mlp", "folds": "5", "hyperparameters": "{epochs: 2"}, "not valid JSON"),
    ({"architecture": "mlp", "folds": "5", "hyperparameters": '{"learning_rate": -1}'}, "learning_rate:"),
    ({"architecture": "", "folds": "5"}, "required when no run_id is given"),
    ({"architecture": "mlp", "folds": "11"}, "at least 11 rows of each class"),
])
def test_a_bad_form_is_shown_again_with_the_error_and_nothing_queued(client, admin, enqueued, data, shown):
    version = separable_dataset_version(rows=20, dimensions=4)
    client.force_login(admin)

    response = client.post("/training/label-issues/new", {"dataset_version": str(version.pk), **data})

    assert response.status_code == 400
    assert shown in response.content.decode()
    assert not LabelIssueScan.objects.exists() and enqueued == []


def test_only_admins_start_or_cancel_scans_from_the_pages(client, make_user, admin):
    version = separable_dataset_version(rows=20, dimensions=4)
    scan = queue_scan(version, admin, folds=2)
    client.force_login(make_user("rita", group="reviewers"))

    assert 'data-testid="runners-only"' in client.get("/training/label-issues/new").content.decode()
    assert client.post("/training/label-issues/new", {"dataset_version": str(version.pk), "architecture": "mlp",
                                                      "folds": "2"}).status_code == 403
    assert client.post(f"/training/label-issues/{scan.pk}/cancel").status_code == 403
    assert LabelIssueScan.objects.get().status == JobStatus.QUEUED


def test_a_running_scan_page_polls_its_progress_and_reloads_when_it_ends(client, admin):
    scan = queue_scan(separable_dataset_version(rows=20, dimensions=4), admin, folds=4)
    jobs.job_claim(services.LABEL_ISSUE_SCAN_JOB, scan.pk)
    LabelIssueScan.objects.filter(pk=scan.pk).update(folds_done=1, message="fold 1 of 4 done (3 epochs)")
    client.force_login(admin)

    page = client.get(f"/training/label-issues/{scan.pk}/").content.decode()
    assert f'hx-get="/training/label-issues/{scan.pk}/progress"' in page
    assert "Folds done: <strong>1 / 4</strong>" in page and "fold 1 of 4 done" in page
    assert 'data-testid="cancel-scan"' in page
    partial = client.get(f"/training/label-issues/{scan.pk}/progress", **HTMX)
    assert partial.status_code == 200 and "<html" not in partial.content.decode()

    client.post(f"/training/label-issues/{scan.pk}/cancel")
    ended = client.get(f"/training/label-issues/{scan.pk}/progress", **HTMX)
    assert ended["HX-Refresh"] == "true"
    assert LabelIssueScan.objects.get().status == JobStatus.CANCELLED
    jobs.job_lock_release(services.LABEL_ISSUE_SCAN_JOB, scan.pk)


def test_the_issue_list_shows_each_issue_with_its_video_and_votes(client, reviewer, make_user):
    version = separable_dataset_version(rows=20, dimensions=4)
    scan = succeeded_scan(version, issues=3)
    first = LabelIssue.objects.select_related("video").get(scan=scan, rank=1)
    first.video.tags = "vocaloid,miku"
    first.video.save(update_fields=["tags"])
    client.force_login(reviewer)

    page = client.get(f"/training/label-issues/{scan.pk}/").content.decode()

    assert page.count('data-testid="issue-row"') == 3
    assert first.video.title in page and f"/labeling/videos/{first.video.aid}/" in page
    assert ">vocaloid<" in page and ">miku<" in page
    assert 'data-testid="send-to-review"' in page
    assert scan.dataset_version.dataset.name in client.get("/training/label-issues/").content.decode()


@pytest.fixture
def reviewer(make_user):
    return make_user("rita", group="reviewers")


@pytest.mark.parametrize("count", [10, 500])
def test_the_issue_list_queries_do_not_grow_with_issues(client, reviewer, django_assert_num_queries, count):
    version = separable_dataset_version(rows=500, dimensions=4)
    scan = succeeded_scan(version, issues=count)
    client.force_login(reviewer)
    client.get(f"/training/label-issues/{scan.pk}/")

    with django_assert_num_queries(7):
        response = client.get(f"/training/label-issues/{scan.pk}/?page=2" if count > 100 else
                              f"/training/label-issues/{scan.pk}/")

    assert response.status_code == 200
    assert response.content.decode().count('data-testid="issue-row"') == min(count, 100)


# --- API ------------------------------------------------------------------------------------


@pytest.fixture
def admin_api(admin):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin)
    return client


def test_the_api_starts_a_scan_and_refuses_bad_input_by_field(admin_api, enqueued, django_capture_on_commit_callbacks):
    version = separable_dataset_version(rows=20, dimensions=4)

    with django_capture_on_commit_callbacks(execute=True):
        created = admin_api.post("/api/v1/label-issue-scans", {
            "dataset_version": str(version.pk), "architecture": "logreg", "hyperparameters": {"epochs": 2},
            "folds": 3}, format="json")
    bad = admin_api.post("/api/v1/label-issue-scans", {
        "dataset_version": str(version.pk), "architecture": "logreg", "hyperparameters": {"learning_rate": -1}},
        format="json")
    too_many_folds = admin_api.post("/api/v1/label-issue-scans", {
        "dataset_version": str(version.pk), "architecture": "logreg", "folds": 11}, format="json")

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "queued" and body["folds"] == 3 and body["hyperparameters"]["epochs"] == 2
    assert body["dataset_version_name"] == f"{version.dataset.name} v{version.number}"
    assert enqueued == [(body["id"], LabelIssueScan.objects.get().celery_task_id, None)]
    assert bad.status_code == 400 and "learning_rate" in bad.json()["errors"]["hyperparameters"]
    assert too_many_folds.status_code == 400 and "folds" in too_many_folds.json()["errors"]
    assert LabelIssueScan.objects.count() == 1


def test_the_api_pages_through_issues_and_sends_some_to_review(admin_api, admin):
    version = separable_dataset_version(rows=20, dimensions=4)
    scan = succeeded_scan(version, issues=12)

    detail = admin_api.get(f"/api/v1/label-issue-scans/{scan.pk}").json()
    page = admin_api.get(f"/api/v1/label-issue-scans/{scan.pk}/issues?limit=5&offset=5").json()
    chosen = [issue["video_id"] for issue in page["results"][:2]]
    sent = admin_api.post(f"/api/v1/label-issue-scans/{scan.pk}/review-requests",
                          {"video_ids": chosen, "reason": "check the label"}, format="json")
    again = admin_api.post(f"/api/v1/label-issue-scans/{scan.pk}/review-requests", {"video_ids": chosen}, format="json")
    stranger = admin_api.post(f"/api/v1/label-issue-scans/{scan.pk}/review-requests",
                              {"video_ids": [987654321]}, format="json")

    assert detail["issue_count"] == 12 and detail["status"] == "succeeded"
    assert page["count"] == 12 and [issue["rank"] for issue in page["results"]] == [6, 7, 8, 9, 10]
    assert sent.status_code == 201 and sent.json() == {"created": 2, "already_open": 0}
    assert again.json() == {"created": 0, "already_open": 2}
    assert stranger.status_code == 400 and "video_ids" in stranger.json()["errors"]
    from labeling.models import ReviewRequest

    assert sorted(ReviewRequest.objects.values_list("video_id", flat=True)) == sorted(chosen)
    assert set(ReviewRequest.objects.values_list("reason", flat=True)) == {"check the label"}
    issues = admin_api.get(f"/api/v1/label-issue-scans/{scan.pk}/issues?limit=12").json()["results"]
    assert [issue["in_review"] for issue in issues].count(True) == 2
    assert admin_api.get("/api/v1/label-issue-scans/987654321").status_code == 404
