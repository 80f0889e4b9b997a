"""Dataset pages: list + build form, a version's live progress, resume, exports, models."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersion, DatasetVersionStatus
from tests.datasets.conftest import DIMENSIONS, EMBEDDING_API_KEY, MODEL_KEY
from tests.datasets.panel_fixtures import (  # noqa: F401 (fixtures)
    build,
    build_form_data,
    corpus,
    counts,
    embedding_model,
    make_tasks,
    make_versions,
    ready_version,
    submit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(make_user):
    """These pages build and resume: the logged-in user is an admin (``can_manage_datasets``)."""
    return make_user("pages-admin", group="admins")


@pytest.fixture
def labeler_client(make_user):
    client = Client()
    client.force_login(make_user("pages-labeler", group="labelers"))
    return client

HTMX = {"HTTP_HX_REQUEST": "true"}
NOTHING = {"datasets": 0, "versions": 0, "tasks": 0}



def form_data(**overrides) -> dict:
    return build_form_data(**{"name": "pages", "mode": "aids", **overrides})



# --- list page -------------------------------------------------------------------


def test_pages_need_login(client):
    for url in ("/datasets/", "/datasets/models/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_index_renders_the_form_and_the_nav_link(logged_in_client, registry_file):
    response = logged_in_client.get("/datasets/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/datasets/"' in page and "aria-current" in page
    assert "Build a dataset version" in page
    assert f'value="{MODEL_KEY}"' in page
    assert "No dataset versions yet" in page


def test_index_lists_versions_and_tasks(logged_in_client, ready_version):
    page = logged_in_client.get("/datasets/").content.decode()

    assert f"{ready_version.dataset.name} v{ready_version.number}" in page
    assert f"/datasets/versions/{ready_version.pk}/" in page
    assert MODEL_KEY in page
    assert 'data-task-status="completed"' in page
    assert 'hx-trigger="every 2s"' not in page  # nothing is running: no polling


def test_index_query_count_does_not_grow_with_rows(logged_in_client, embedding_model):
    versions = make_versions(5, embedding_model)
    for version in versions:  # at most one active task per version
        make_tasks(1, status=DatasetTaskStatus.RUNNING, version=version)
    with CaptureQueriesContext(connection) as few:
        assert logged_in_client.get("/datasets/").status_code == 200
    more = make_versions(40, embedding_model)
    for version in more[:15]:
        make_tasks(1, status=DatasetTaskStatus.RUNNING, version=version)
    with CaptureQueriesContext(connection) as many:
        assert logged_in_client.get("/datasets/").status_code == 200

    assert len(many) == len(few)


def test_tasks_block_polls_while_a_task_runs_and_stops_when_done(logged_in_client, registry_file):
    (task,) = make_tasks(1, status=DatasetTaskStatus.RUNNING)

    assert 'hx-trigger="every 2s"' in logged_in_client.get("/datasets/").content.decode()
    live = logged_in_client.get("/datasets/tasks/", **HTMX)
    assert live.status_code == 200
    assert 'hx-trigger="every 2s"' in live.content.decode() and "<html" not in live.content.decode()

    DatasetTask.objects.filter(pk=task.pk).update(status=DatasetTaskStatus.COMPLETED)
    done = logged_in_client.get("/datasets/tasks/", **HTMX)
    assert done.status_code == 286  # htmx: stop polling
    assert "hx-trigger" not in done.content.decode()
    assert 'data-task-status="completed"' in done.content.decode()


# --- build form ------------------------------------------------------------------


def test_build_from_an_aid_list_redirects_to_the_ready_version(submit, corpus):
    aid_text = "\n".join(str(video.aid) for video in corpus["labeled"])

    response = submit(form_data(aid_list=aid_text, description="by hand"))

    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert response["Location"] == f"/datasets/versions/{version.pk}/"
    assert version.status == DatasetVersionStatus.READY
    assert (version.dataset.name, version.description, version.total_records) == ("pages", "by hand", 10)


def test_build_by_sampling_with_filters(submit, corpus):
    response = submit(form_data(mode="sampling", strategy="random", limit="3", label_value="true", seed="5",
                                force_regenerate="on", title_contains="测试"))

    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert version.status == DatasetVersionStatus.READY and version.total_records == 3
    assert version.positives == 3 and version.force_regenerate is True
    assert version.selection["strategy"] == "random"
    assert version.selection["metadata_filter"] == {"title_contains": "测试"}


def test_htmx_build_answers_with_a_client_redirect(submit, corpus):
    response = submit(form_data(aid_list=" ".join(str(video.aid) for video in corpus["positive"])), **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/datasets/versions/{DatasetVersion.objects.get().pk}/"


@pytest.mark.parametrize("overrides,field,message", [
    ({"aid_list": ""}, "aid_list", "Give at least one aid"),
    ({"aid_list": "12, abc, -4"}, "aid_list", "Not positive integers: abc, -4"),
    ({"aid_list": "10000", "test_ratio": "0.3"}, "test_ratio", "must sum to 1"),
    ({"aid_list": "10000", "train_ratio": "0", "val_ratio": "0.5", "test_ratio": "0.5"}, "train_ratio", "above 0"),
    ({"aid_list": "10000", "embedding_model": "nope"}, "embedding_model", "Select a valid choice"),
    ({"aid_list": "10000", "seed": "x"}, "seed", "Enter a whole number"),
    ({"aid_list": "10000 99999999"}, "aid_list", "not in the corpus: 99999999"),
    ({"aid_list": "40000"}, "aid_list", "consensus"),
    ({"mode": "sampling", "limit": "0"}, "limit", "greater than or equal to 1"),
    ({"mode": "sampling", "min_duration": "100", "max_duration": "10"}, "max_duration", "at least the minimum"),
    ({"mode": "sampling", "title_contains": "no such title"}, None, "No AIDs found matching the sampling criteria"),
    ({"mode": "unknown"}, "mode", "Select a valid choice"),
])
def test_form_errors_are_shown_and_nothing_is_written(submit, corpus, overrides, field, message):
    response = submit(form_data(**overrides))

    assert response.status_code == 400
    form = response.context["form"]
    errors = form.errors.get(field or "__all__", [])
    assert any(message in error for error in errors), form.errors
    assert message.split(":")[0] in response.content.decode()
    assert counts() == NOTHING


def test_htmx_form_errors_swap_only_the_form(submit, corpus):
    response = submit(form_data(aid_list="abc"), **HTMX)

    assert response.status_code == 200  # htmx swaps 2xx only
    body = response.content.decode()
    assert 'id="build"' in body and "Not positive integers: abc" in body and "<html" not in body
    assert counts() == NOTHING


# --- version page ----------------------------------------------------------------


def test_ready_version_page_shows_stats_splits_and_exports(logged_in_client, ready_version):
    response = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f"{ready_version.dataset.name} v{ready_version.number}" in page
    assert 'data-testid="version-status">Ready' in page
    assert ready_version.content_hash in page
    for split in ("train", "val", "test"):
        assert f"<td>{split}</td>" in page
    assert f"/datasets/versions/{ready_version.pk}/export/parquet" in page
    assert f"/datasets/versions/{ready_version.pk}/export/npz" in page
    assert 'data-polling="false"' in page and 'hx-trigger="every 1s"' not in page
    assert "Resume the build" not in page


def test_unknown_version_is_404(logged_in_client):
    assert logged_in_client.get("/datasets/versions/00000000-0000-4000-8000-000000000000/").status_code == 404


def test_progress_block_polls_every_second_while_building(logged_in_client, embedding_model):
    (version,) = make_versions(1, embedding_model, status=DatasetVersionStatus.BUILDING)
    (task,) = make_tasks(1, status=DatasetTaskStatus.RUNNING, version=version)
    DatasetTask.objects.filter(pk=task.pk).update(
        current_step="generating_embeddings", completed_steps=3, total_steps=6, done=120, total=400,
        percentage=36.0, eta_seconds=14.0, message="Generated 120/400 embeddings",
    )

    page = logged_in_client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in page and 'data-polling="true"' in page

    response = logged_in_client.get(f"/datasets/versions/{version.pk}/progress", **HTMX)
    assert response.status_code == 200
    block = response.content.decode()
    assert 'hx-trigger="every 1s"' in block and "<html" not in block
    assert "Step 3/6: <strong>generating_embeddings</strong>" in block
    assert "120 / 400" in block and "36.0%" in block and "about 14 s left" in block
    assert "Generated 120/400 embeddings" in block
    assert 'id="version-summary"' not in block


def test_progress_block_stops_polling_when_the_build_is_done(logged_in_client, ready_version):
    response = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/progress", **HTMX)

    assert response.status_code == 286  # htmx stops polling
    block = response.content.decode()
    assert "hx-trigger" not in block
    assert "100.0%" in block
    assert 'id="version-summary" hx-swap-oob="true"' in block  # the final counts replace the old ones


def test_progress_without_htmx_redirects_to_the_page(logged_in_client, ready_version):
    response = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/progress")

    assert response.status_code == 302 and response["Location"] == f"/datasets/versions/{ready_version.pk}/"


def test_failed_build_shows_the_error_and_resumes(logged_in_client, corpus, build, embedding_server,
                                                 django_capture_on_commit_callbacks):
    embedding_server.always_fail_with = 500
    task = build([video.aid for video in corpus["labeled"]])
    assert task.status == DatasetTaskStatus.FAILED
    version = task.dataset_version

    page = logged_in_client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert 'data-testid="task-error"' in page and task.error[:30] in page
    assert "Resume the build" in page
    assert "/export/" not in page

    embedding_server.always_fail_with = None
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in_client.post(f"/datasets/versions/{version.pk}/resume")

    assert response.status_code == 302 and response["Location"] == f"/datasets/versions/{version.pk}/"
    task.refresh_from_db()
    version.refresh_from_db()
    assert task.status == DatasetTaskStatus.COMPLETED and version.status == DatasetVersionStatus.READY


def test_resuming_a_ready_version_is_refused_with_a_message(logged_in_client, ready_version):
    response = logged_in_client.post(f"/datasets/versions/{ready_version.pk}/resume", follow=True)

    assert "only failed or cancelled builds resume" in response.content.decode()
    assert ready_version.tasks.get().status == DatasetTaskStatus.COMPLETED


# --- exports -----------------------------------------------------------------------


def test_export_parquet(logged_in_client, ready_version):
    response = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/export/parquet")

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert f"{ready_version.dataset.name}-v{ready_version.number}.parquet" in response["Content-Disposition"]
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == 10
    assert {"aid", "label", "split", "vector"} <= set(table.column_names)
    assert len(table.column("vector")[0].as_py()) == DIMENSIONS


def test_export_npz(logged_in_client, ready_version):
    response = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/export/npz")

    assert response.status_code == 200
    arrays = np.load(io.BytesIO(b"".join(response.streaming_content)))
    assert arrays["X"].shape == (10, DIMENSIONS) and arrays["y"].shape == (10,)


def test_export_of_an_unready_version_or_unknown_format(logged_in_client, embedding_model, ready_version):
    (building,) = make_versions(1, embedding_model, status=DatasetVersionStatus.BUILDING)

    response = logged_in_client.get(f"/datasets/versions/{building.pk}/export/npz", follow=True)
    assert "only ready versions can be exported" in response.content.decode()
    assert logged_in_client.get(f"/datasets/versions/{ready_version.pk}/export/csv").status_code == 404


# --- embedding models page ----------------------------------------------------------


def test_models_page_lists_the_registry_without_keys(logged_in_client, registry_file, ready_version):
    response = logged_in_client.get("/datasets/models/")

    assert response.status_code == 200
    page = response.content.decode()
    assert MODEL_KEY in page and "fake-embedding-model" in page and "openai-compatible" in page
    assert "CVSA_TEST_DATASET_EMBED_KEY" in page and 'data-testid="key-set"' in page
    assert EMBEDDING_API_KEY not in page
    assert "<td>10</td>" in page  # stored vectors


def test_models_page_says_when_a_key_is_missing(logged_in_client, registry_file, monkeypatch):
    monkeypatch.delenv("CVSA_TEST_DATASET_EMBED_KEY")

    assert 'data-testid="key-missing"' in logged_in_client.get("/datasets/models/").content.decode()


def test_models_page_with_an_invalid_registry(logged_in_client, settings, tmp_path):
    settings.CVSA_EMBEDDING_MODELS_FILE = tmp_path / "gone.toml"

    response = logged_in_client.get("/datasets/models/")

    assert response.status_code == 200
    assert "The registry is invalid" in response.content.decode()


def test_stale_task_list_is_not_polled_after_cleanup(logged_in_client, registry_file):
    make_tasks(1, status=DatasetTaskStatus.FAILED, age=timedelta(days=2))

    assert 'hx-trigger="every 2s"' not in logged_in_client.get("/datasets/").content.decode()


# --- roles ----------------------------------------------------------------------------


def test_pages_need_a_team_role(client, make_user, ready_version):
    client.force_login(make_user("outsider", group=None))
    for url in ("/datasets/", "/datasets/models/", f"/datasets/versions/{ready_version.pk}/",
                f"/datasets/versions/{ready_version.pk}/export/npz"):
        assert client.get(url).status_code == 403, url


def test_a_labeler_reads_but_cannot_build_or_resume(labeler_client, corpus, ready_version, registry_file):
    page = labeler_client.get("/datasets/").content.decode()
    assert 'data-testid="build-admins-only"' in page and 'action="/datasets/build"' not in page
    assert labeler_client.get(f"/datasets/versions/{ready_version.pk}/").status_code == 200
    assert labeler_client.get(f"/datasets/versions/{ready_version.pk}/export/npz").status_code == 200
    before = counts()

    build = labeler_client.post("/datasets/build", form_data(aid_list=str(corpus["labeled"][0].aid)))
    resume = labeler_client.post(f"/datasets/versions/{ready_version.pk}/resume")

    assert build.status_code == 403 and resume.status_code == 403
    assert counts() == before


def test_a_failed_build_offers_resume_to_admins_only(logged_in_client, labeler_client, embedding_model):
    (version,) = make_versions(1, embedding_model, status=DatasetVersionStatus.FAILED)
    make_tasks(1, status=DatasetTaskStatus.FAILED, version=version)

    assert "/resume" in logged_in_client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "/resume" not in labeler_client.get(f"/datasets/versions/{version.pk}/").content.decode()


# --- bad input, htmx ------------------------------------------------------------------


def test_non_ascii_digits_in_the_aid_list_are_a_field_error(submit):
    response = submit(form_data(aid_list="17², 12345678901234567890123"))

    assert response.status_code == 400
    page = response.content.decode()
    assert "Not positive integers: 17²" in page
    assert counts() == NOTHING


def test_a_history_restore_gets_the_full_page_and_responses_vary_on_hx_request(logged_in_client, ready_version):
    restore = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/progress",
                                   HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert restore.status_code == 302  # to the full page, not a partial swapped in as the body

    partial = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/progress", **HTMX)
    assert "HX-Request" in partial["Vary"]
    tasks = logged_in_client.get("/datasets/tasks/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert tasks.status_code == 302 and "HX-Request" in tasks["Vary"]
