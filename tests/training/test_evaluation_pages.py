"""Evaluation pages and API: the panel a version page loads (its evaluations, polled
while one is active, a form for admins that queues one with per-field errors), its
query count independent of the number of evaluations, the side-by-side page (both
versions' metrics and confusion matrices on the same data, a clear message and a button
when a side lacks an evaluation), and the REST endpoints."""

from __future__ import annotations

import pytest
from django.template.defaultfilters import floatformat
from django.utils import timezone
from rest_framework.test import APIClient

from tests.training.factories import separable_dataset_version
from tests.training.registry_factories import registered_version, trained_run
from training import services
from training.evaluation_selectors import evaluations_side_by_side
from training.models import Evaluation, JobStatus
from training.services import evaluation_jobs

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def labeler(make_user):
    return make_user("lea", group="labelers")


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(evaluation_jobs, "evaluation_enqueue",
                        lambda evaluation_id, celery_task_id, claim_attempt=None: sent.append(evaluation_id))
    return sent


def evaluated(version, admin, dataset_version=None, split="test") -> Evaluation:
    evaluation = services.evaluation_create(
        version_id=version.pk, dataset_version_id=(dataset_version or version.run.dataset_version).pk, split=split,
        user=admin, enqueue=False,
    )
    return services.evaluation_run(evaluation.pk)


def stored_evaluations(version, count: int, *, status: str = JobStatus.SUCCEEDED) -> None:
    """``count`` finished evaluation rows of ``version`` (as the job leaves them), in one insert."""
    now = timezone.now()
    Evaluation.objects.bulk_create([
        Evaluation(version=version, dataset_version_id=version.run.dataset_version_id, split="test", status=status,
                   rows=12, positives=6, metrics={"f1": 0.5 + index / 1000, "roc_auc": 0.9, "pr_auc": 0.8},
                   confusion_matrix=[[5, 1], [1, 5]], started_at=now, finished_at=now)
        for index in range(count)
    ])


# --- the panel ------------------------------------------------------------------------------


def test_the_panel_lists_evaluations_with_their_numbers_and_offers_admins_the_form(client, admin, labeler):
    version = registered_version()
    evaluation = evaluated(version, admin)
    url = f"/training/model-versions/{version.pk}/evaluations/"

    client.force_login(labeler)
    for_labeler = client.get(url, **HTMX).content.decode()
    client.force_login(admin)
    for_admin = client.get(url, **HTMX).content.decode()

    assert "<html" not in for_admin and 'data-testid="evaluation-panel"' in for_admin
    assert for_admin.count('data-testid="evaluation-row"') == 1
    (tn, fp), (fn, tp) = evaluation.confusion_matrix
    assert f"{tn} {fp} / {fn} {tp}" in for_admin and f"{evaluation.metrics['f1']:.4f}" in for_admin
    assert f"{evaluation.metrics['roc_auc']:.4f}" in for_admin and f"{evaluation.metrics['pr_auc']:.4f}" in for_admin
    assert 'data-polling="false"' in for_admin
    assert 'data-testid="evaluation-form"' in for_admin and 'data-testid="evaluation-form"' not in for_labeler
    assert for_labeler.count('data-testid="evaluation-row"') == 1
    # Without htmx it is a page of its own.
    assert "<html" in client.get(url).content.decode()


def test_the_form_offers_ready_versions_of_the_same_embedding_model_only(client, admin):
    version = registered_version()
    same_model = separable_dataset_version(rows=20, dimensions=8, seed=3)
    other_model = separable_dataset_version(rows=20, dimensions=4, seed=3)
    client.force_login(admin)

    html = client.get(f"/training/model-versions/{version.pk}/evaluations/", **HTMX).content.decode()

    assert f'value="{same_model.pk}"' in html and f'value="{version.run.dataset_version_id}"' in html
    assert f'value="{other_model.pk}"' not in html


def test_queueing_from_the_panel_lists_it_and_polls_until_it_ends(client, admin, enqueued,
                                                                  django_capture_on_commit_callbacks):
    version = registered_version()
    client.force_login(admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/training/model-versions/{version.pk}/evaluations/new",
                               {"dataset_version": str(version.run.dataset_version_id), "split": "test"}, **HTMX)

    evaluation = Evaluation.objects.get()
    html = response.content.decode()
    assert response.status_code == 200 and enqueued == [evaluation.pk]
    assert f"Queued evaluation #{evaluation.pk}" in html and 'data-polling="true"' in html
    assert f'hx-get="/training/model-versions/{version.pk}/evaluations/list"' in html
    polled = client.get(f"/training/model-versions/{version.pk}/evaluations/list", **HTMX).content.decode()
    assert 'data-polling="true"' in polled and 'data-testid="evaluation-form"' not in polled

    services.evaluation_run(evaluation.pk)

    ended = client.get(f"/training/model-versions/{version.pk}/evaluations/list", **HTMX).content.decode()
    assert 'data-polling="false"' in ended and "hx-trigger" not in ended and 'data-status="succeeded"' in ended


@pytest.mark.parametrize(("data", "shown"), [
    ({"dataset_version": "", "split": "test"}, "This field is required."),
    ({"dataset_version": "00000000-0000-0000-0000-000000000000", "split": "test"}, "Select a valid choice."),
    ({"split": "holdout"}, "Select a valid choice. holdout is not one of the available choices."),
])
def test_bad_input_shows_the_error_at_its_field_and_queues_nothing(client, admin, enqueued, data, shown):
    version = registered_version()
    client.force_login(admin)
    data = {"dataset_version": str(version.run.dataset_version_id), **data}

    partial = client.post(f"/training/model-versions/{version.pk}/evaluations/new", data, **HTMX)
    page = client.post(f"/training/model-versions/{version.pk}/evaluations/new", data)

    assert partial.status_code == 200 and page.status_code == 400
    assert shown in partial.content.decode() and 'data-testid="evaluation-panel"' in partial.content.decode()
    assert not Evaluation.objects.exists() and enqueued == []


def test_an_error_of_the_service_lands_at_its_field(client, admin, enqueued, monkeypatch):
    """What only the service knows (here: an empty split of a frozen version) is shown
    at the form's field like the form's own errors."""
    from django.core.exceptions import ValidationError

    version = registered_version()

    def empty_val_split(version, dataset_version, split):
        raise ValidationError({"split": f"the {split} split of dataset version {dataset_version.pk} is empty"})

    monkeypatch.setattr(evaluation_jobs, "evaluation_check_inputs", empty_val_split)
    client.force_login(admin)

    response = client.post(f"/training/model-versions/{version.pk}/evaluations/new",
                           {"dataset_version": str(version.run.dataset_version_id), "split": "val"}, **HTMX)

    html = response.content.decode()
    assert f"the val split of dataset version {version.run.dataset_version_id} is empty" in html
    assert html.index("is empty") > html.index('name="dataset_version"')  # at the split field, after the version's
    assert not Evaluation.objects.exists() and enqueued == []


def test_only_admins_queue_or_cancel_evaluations(client, admin, labeler, enqueued):
    version = registered_version()
    queued = services.evaluation_create(version_id=version.pk, dataset_version_id=version.run.dataset_version_id,
                                        user=admin, enqueue=False)
    client.force_login(labeler)

    create = client.post(f"/training/model-versions/{version.pk}/evaluations/new",
                         {"dataset_version": str(version.run.dataset_version_id), "split": "test"}, **HTMX)
    cancel = client.post(f"/training/evaluations/{queued.pk}/cancel", **HTMX)

    assert create.status_code == 403 and cancel.status_code == 403
    assert list(Evaluation.objects.values_list("status", flat=True)) == [JobStatus.QUEUED]
    client.force_login(admin)
    cancelled = client.post(f"/training/evaluations/{queued.pk}/cancel", **HTMX)
    assert f"Cancelled evaluation #{queued.pk}" in cancelled.content.decode()
    assert Evaluation.objects.get().status == JobStatus.CANCELLED


@pytest.mark.parametrize("count", [10, 50])
def test_the_panel_queries_do_not_grow_with_evaluations(client, admin, django_assert_num_queries, count):
    version = registered_version()
    stored_evaluations(version, count)
    client.force_login(admin)
    url = f"/training/model-versions/{version.pk}/evaluations/"
    client.get(url, **HTMX)

    # session, user, role check, version, evaluations, admin check, the form's dataset versions
    with django_assert_num_queries(7):
        response = client.get(url, **HTMX)

    assert response.content.decode().count('data-testid="evaluation-row"') == count


def test_unknown_versions_are_404(client, admin):
    client.force_login(admin)
    assert client.get("/training/model-versions/987654321/evaluations/", **HTMX).status_code == 404
    assert client.get("/training/evaluations/compare?a=987654321&b=1").status_code == 404
    empty = client.get("/training/evaluations/compare")
    assert empty.status_code == 200 and "Name two model versions" in empty.content.decode()


# --- side by side -----------------------------------------------------------------------------


def two_versions():
    """Versions 1 and 2 of model "m", trained on the same dataset version with other seeds."""
    first = registered_version()
    second = registered_version(run=trained_run(first.run.experiment, seed=1))
    return first, second


def test_side_by_side_rows_hold_both_metrics_and_their_difference(admin):
    first, second = two_versions()
    a, b = evaluated(first, admin), evaluated(second, admin)

    comparison = evaluations_side_by_side(first, second, first.run.dataset_version)

    rows = {row.metric: row for row in comparison.rows}
    assert list(rows) == ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "loss", "rows", "positives"]
    assert rows["f1"].a == a.metrics["f1"] and rows["f1"].b == b.metrics["f1"]
    assert rows["f1"].difference == pytest.approx(b.metrics["f1"] - a.metrics["f1"])
    assert rows["rows"].difference == 0
    assert comparison.confusion_a == a.confusion_matrix and comparison.confusion_b == b.confusion_matrix
    assert comparison.complete and not comparison.pending


def test_side_by_side_uses_the_newest_succeeded_evaluation_on_that_data_only(admin):
    first, second = two_versions()
    other_data = separable_dataset_version(rows=30, dimensions=8, seed=9)
    evaluated(first, admin)
    newest = evaluated(first, admin)
    evaluated(second, admin, other_data)
    failed = services.evaluation_create(version_id=first.pk, dataset_version_id=first.run.dataset_version_id,
                                        user=admin, enqueue=False)
    services.evaluation_fail(failed.pk, "broken")

    comparison = evaluations_side_by_side(first, second, first.run.dataset_version)

    assert comparison.evaluation_a == newest and comparison.evaluation_b is None
    assert comparison.rows[0].b is None and comparison.rows[0].difference is None


def test_the_compare_page_shows_metrics_and_both_confusion_matrices(client, admin, labeler):
    first, second = two_versions()
    a, b = evaluated(first, admin), evaluated(second, admin)
    client.force_login(labeler)

    response = client.get(f"/training/evaluations/compare?a={first.pk}&b={second.pk}")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="metric-f1"' in html
    assert 'data-testid="confusion-a"' in html and 'data-testid="confusion-b"' in html
    f1_row = html[html.index('data-testid="metric-f1"'):].split("</tr>")[0]
    difference = b.metrics["f1"] - a.metrics["f1"]
    shown = [floatformat(a.metrics["f1"], "-4"), floatformat(b.metrics["f1"], "-4"),
             ("+" if difference > 0 else "") + floatformat(difference, "-4")]
    assert [cell.split("<")[0] for cell in f1_row.split('class="number">')[1:]] == shown
    assert 'data-testid="missing-a"' not in html and 'data-testid="missing-b"' not in html


def test_a_side_without_an_evaluation_says_so_and_an_admin_can_queue_it(client, admin, labeler, enqueued,
                                                                       django_capture_on_commit_callbacks):
    first, second = two_versions()
    evaluated(first, admin)
    url = f"/training/evaluations/compare?a={first.pk}&b={second.pk}&split=test"

    client.force_login(labeler)
    for_labeler = client.get(url).content.decode()
    client.force_login(admin)
    for_admin = client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post(f"/training/model-versions/{second.pk}/evaluations/new", {
            "dataset_version": str(first.run.dataset_version_id), "split": "test", "next": url})
    pending = client.get(url).content.decode()

    assert 'data-testid="missing-b"' in for_labeler and "has no evaluation on this dataset version" in for_labeler
    assert 'data-testid="evaluate-b"' not in for_labeler and 'data-testid="evaluate-b"' in for_admin
    assert queued.status_code == 302 and queued["Location"] == url
    evaluation = Evaluation.objects.get(version=second)
    assert enqueued == [evaluation.pk]
    assert "one is queued" in pending and 'data-polling="true"' in pending and 'data-testid="evaluate-b"' not in pending

    services.evaluation_run(evaluation.pk)
    done = client.get(url, **HTMX).content.decode()
    assert 'data-polling="false"' in done and 'data-testid="confusion-b"' in done and "<html" not in done


def test_a_side_that_cannot_be_evaluated_on_that_data_says_why(client, admin):
    first = registered_version()
    other = registered_version(run=trained_run(rows=30, dimensions=4))
    client.force_login(admin)

    html = client.get(f"/training/evaluations/compare?a={first.pk}&b={other.pk}").content.decode()

    assert 'data-testid="problem-b"' in html and "another embedding model" in html
    assert 'data-testid="evaluate-b"' not in html


def test_an_off_site_next_is_ignored(client, admin, enqueued):
    version = registered_version()
    client.force_login(admin)

    response = client.post(f"/training/model-versions/{version.pk}/evaluations/new", {
        "dataset_version": str(version.run.dataset_version_id), "split": "test", "next": "https://evil.example/"})

    assert response["Location"] == f"/training/model-versions/{version.pk}/evaluations/"


# --- API ------------------------------------------------------------------------------------


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_queues_reads_lists_and_cancels_evaluations(admin, labeler, enqueued,
                                                           django_capture_on_commit_callbacks):
    version = registered_version()
    api = api_as(admin)
    url = f"/api/v1/model-versions/{version.pk}/evaluations"

    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(url, {"dataset_version": str(version.run.dataset_version_id)}, format="json")
    refused = api_as(labeler).post(url, {"dataset_version": str(version.run.dataset_version_id)}, format="json")
    bad_split = api.post(url, {"dataset_version": str(version.run.dataset_version_id), "split": "x"}, format="json")
    other_model = api.post(url, {"dataset_version": str(separable_dataset_version(rows=20, dimensions=4).pk)},
                           format="json")

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "queued" and body["split"] == "test" and body["version"] == version.pk
    assert enqueued == [body["id"]] and refused.status_code == 403
    assert bad_split.status_code == 400 and "split" in bad_split.json()["errors"]
    assert other_model.status_code == 400
    assert "another embedding model" in other_model.json()["errors"]["dataset_version"][0]
    assert Evaluation.objects.count() == 1

    services.evaluation_run(body["id"])
    detail = api_as(labeler).get(f"/api/v1/evaluations/{body['id']}").json()
    listed = api_as(labeler).get(url).json()
    assert detail["status"] == "succeeded" and detail["rows"] and len(detail["confusion_matrix"]) == 2
    assert set(detail["metrics"]) >= {"f1", "roc_auc", "pr_auc", "loss"}
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]

    finished = api.post(f"/api/v1/evaluations/{body['id']}/cancel")
    assert finished.status_code == 400
    assert "only a queued or running evaluation can be cancelled" in finished.json()["detail"]
    queued = services.evaluation_create(version_id=version.pk, dataset_version_id=version.run.dataset_version_id,
                                        user=admin, enqueue=False)
    assert api.post(f"/api/v1/evaluations/{queued.pk}/cancel").json()["status"] == "cancelled"


def test_the_api_is_404_for_unknown_versions_and_evaluations(admin):
    api = api_as(admin)
    assert api.get("/api/v1/model-versions/987654321/evaluations").json() == {"detail": "Model version not found"}
    assert api.post("/api/v1/model-versions/987654321/evaluations", {}, format="json").status_code == 404
    assert api.get("/api/v1/evaluations/987654321").json() == {"detail": "Evaluation not found"}
    assert api.post("/api/v1/evaluations/987654321/cancel").status_code == 404
