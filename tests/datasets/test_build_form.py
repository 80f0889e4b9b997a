"""Issue 10 item 9: the build form and its request object.

A model without its API key is refused up front on every surface; errors come with a
focusable summary; ``limit`` and ``balanced`` hold because sampling happens among the
videos a build keeps; the form counts the videos and asks to confirm large builds;
admins cancel a running build and delete a version; the version page is readable.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django.utils.html import escape
from rest_framework.test import APIClient

from datasets import forms as build_forms
from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersion, DatasetVersionStatus
from datasets.selectors import sampling_select
from tests.datasets.conftest import EMBEDDING_KEY_ENV, MODEL_KEY
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos
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

HTMX = {"HTTP_HX_REQUEST": "true"}
NOTHING = {"datasets": 0, "versions": 0, "tasks": 0}
MAJORITY_TRUE = (True, True, False)  # inconsistent, consensus yes
MAJORITY_FALSE = (False, False, True)  # inconsistent, consensus no


@pytest.fixture
def user(make_user):
    return make_user("form-admin", group="admins")


@pytest.fixture
def labeler_client(make_user):
    client = Client()
    client.force_login(make_user("form-labeler", group="labelers"))
    return client




def form_data(**overrides) -> dict:
    return build_form_data(**{"name": "form", "mode": "sampling", **overrides})


@pytest.fixture
def mixed_corpus(db):
    """50 yes and 30 no that all labelers agree on, plus 20 + 20 with a disagreeing
    labeler (inconsistent, but with a majority label): a sampling that ignores
    consistency picks some of those, and the build then drops them."""
    labelers = make_labelers(3, prefix="mixed")
    groups = {
        "positive": make_videos(50, start_aid=100_000),
        "negative": make_videos(30, start_aid=200_000),
        "majority_true": make_videos(20, start_aid=300_000),
        "majority_false": make_videos(20, start_aid=400_000),
    }
    label(groups["positive"], labelers, POSITIVE)
    label(groups["negative"], labelers, NEGATIVE)
    label(groups["majority_true"], labelers, MAJORITY_TRUE)
    label(groups["majority_false"], labelers, MAJORITY_FALSE)
    groups["inconsistent"] = groups["majority_true"] + groups["majority_false"]
    return groups


def inconsistent_aids(groups) -> set[int]:
    return {video.aid for video in groups["inconsistent"]}


# --- a model whose API key is not set: refused up front everywhere ---------------------


@pytest.fixture
def key_unset(registry_file, monkeypatch):
    monkeypatch.delenv(EMBEDDING_KEY_ENV)


def test_the_service_refuses_a_model_without_its_api_key(corpus, key_unset):
    request = services.BuildRequest(embedding_model_key=MODEL_KEY, aid_list=[video.aid for video in corpus["labeled"]])

    with pytest.raises(ValidationError) as raised:
        services.dataset_build_request(request)

    assert EMBEDDING_KEY_ENV in " ".join(raised.value.message_dict["embedding_model"])
    assert counts() == NOTHING


def test_the_form_refuses_a_model_without_its_api_key(submit, corpus, key_unset):
    response = submit(form_data())

    assert response.status_code == 400
    assert any(EMBEDDING_KEY_ENV in error for error in response.context["form"].errors["embedding_model"])
    page = response.content.decode()
    assert f"API key not set ({EMBEDDING_KEY_ENV})" in page  # said in the model's choice too
    assert counts() == NOTHING  # no version number burnt, no task


@pytest.mark.parametrize("url,body", [
    ("/api/v1/dataset/build", {"embedding_model": MODEL_KEY, "aid_list": [10_000, 10_001]}),
    ("/api/v1/dataset/create-with-sampling", {"embedding_model": MODEL_KEY, "sampling": {"strategy": "all"}}),
    ("/v1/dataset/build", {"embedding_model": MODEL_KEY, "aid_list": [10_000]}),
])
def test_the_api_refuses_a_model_without_its_api_key(make_user, corpus, key_unset, url, body):
    client = APIClient()
    client.force_authenticate(make_user("api-admin", group="admins"))

    response = client.post(url, json.dumps(body), content_type="application/json")

    assert response.status_code == 400, response.content
    assert EMBEDDING_KEY_ENV in response.json()["detail"]
    assert counts() == NOTHING


def test_build_dataset_refuses_a_model_without_its_api_key(corpus, key_unset):
    with pytest.raises(CommandError, match=EMBEDDING_KEY_ENV):
        call_command("build_dataset", "--strategy", "all", "--model", MODEL_KEY)

    assert counts() == NOTHING


def test_resume_is_refused_while_the_api_key_is_missing(logged_in_client, corpus, build, embedding_server,
                                                       monkeypatch):
    embedding_server.always_fail_with = 500
    task = build([video.aid for video in corpus["labeled"]])
    assert task.status == DatasetTaskStatus.FAILED
    monkeypatch.delenv(EMBEDDING_KEY_ENV)

    page = logged_in_client.get(f"/datasets/versions/{task.dataset_version_id}/").content.decode()
    assert "Resume the build" not in page
    assert 'data-testid="resume-blocked"' in page and EMBEDDING_KEY_ENV in page
    response = logged_in_client.post(f"/datasets/versions/{task.dataset_version_id}/resume", follow=True)

    assert EMBEDDING_KEY_ENV in response.content.decode()
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.FAILED and task.attempts == 1


def test_a_failed_version_shows_its_error_once(logged_in_client, corpus, build, embedding_server):
    embedding_server.always_fail_with = 500
    task = build([video.aid for video in corpus["labeled"]])

    page = logged_in_client.get(f"/datasets/versions/{task.dataset_version_id}/").content.decode()

    reason = escape(task.dataset_version.error)
    assert reason and page.count(reason) == 1


# --- the error summary --------------------------------------------------------------------


def test_errors_come_with_a_focused_summary_linking_to_the_fields(submit, corpus):
    response = submit(form_data(mode="aids", aid_list="12, abc", test_ratio="0.3"))

    assert response.status_code == 400
    page = response.content.decode()
    summary = re.search(r'<div class="error-summary"[^>]*>.*?</div>', page, re.S).group(0)
    assert 'tabindex="-1"' in summary and "autofocus" in summary and 'role="alert"' in summary
    assert "There are 2 problems" in summary
    assert 'href="#id_aid_list"' in summary and "Not positive integers: abc" in summary
    assert 'href="#id_test_ratio"' in summary and "must sum to 1" in summary
    # The summary is the first thing in the form, above every field.
    assert page.index('data-testid="error-summary"') < page.index('id="id_name"')
    assert counts() == NOTHING


def test_the_htmx_answer_carries_the_summary_for_htmx_to_focus(submit, corpus):
    response = submit(form_data(mode="sampling", limit="0"), **HTMX)

    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'id="error-summary"' in body and "autofocus" in body and 'href="#id_limit"' in body


def test_a_radio_field_error_links_to_its_first_option(submit, corpus):
    page = submit(form_data(mode="unknown")).content.decode()

    assert 'href="#id_mode_0"' in page and 'id="id_mode_0"' in page


# --- limit and balanced hold: sampling among the videos a build keeps --------------------


def test_sampling_for_a_build_draws_only_consistent_videos(mixed_corpus):
    random = sampling_select(strategy="random", limit=40, seed=7, include_inconsistent=False)
    balanced = sampling_select(strategy="balanced", limit=50, seed=7, include_inconsistent=False)
    with_inconsistent = sampling_select(strategy="all", include_inconsistent=True)

    assert random.sampled_count == 40 and not set(random.aid_list) & inconsistent_aids(mixed_corpus)
    assert (balanced.sampling_info["positives"], balanced.sampling_info["negatives"]) == (25, 25)
    assert not set(balanced.aid_list) & inconsistent_aids(mixed_corpus)
    assert random.total_available == 80 and with_inconsistent.total_available == 120


def test_a_limit_of_40_builds_40(submit, mixed_corpus):
    response = submit(form_data(strategy="random", limit="40", seed="3"))

    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert version.status == DatasetVersionStatus.READY
    assert len(version.requested_aids) == 40 and version.total_records == 40
    assert version.inconsistent_excluded == 0


def test_balanced_50_builds_25_of_each(submit, mixed_corpus):
    response = submit(form_data(strategy="balanced", limit="50", seed="3"))

    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert (version.total_records, version.positives, version.negatives) == (50, 25, 25)


def test_including_inconsistent_videos_samples_them_too(submit, mixed_corpus):
    submit(form_data(strategy="all", include_inconsistent="on"))

    version = DatasetVersion.objects.get()
    assert version.total_records == 120 and version.inconsistent_included == 40
    assert version.selection["include_inconsistent"] is True


def test_an_aid_list_of_only_disagreed_videos_is_refused_up_front(submit, mixed_corpus):
    aids = " ".join(str(video.aid) for video in mixed_corpus["inconsistent"][:3])

    response = submit(form_data(mode="aids", aid_list=aids))

    assert response.status_code == 400
    assert "disagreeing labelers" in " ".join(response.context["form"].errors["aid_list"])
    assert counts() == NOTHING


# --- how many videos, and a confirmation for large builds ----------------------------------


def test_the_count_follows_the_form(logged_in_client, registry_file, mixed_corpus):
    def count(**overrides) -> str:
        response = logged_in_client.get("/datasets/build/count", form_data(**overrides), **HTMX)
        assert response.status_code == 200
        return response.content.decode()

    assert '<strong data-testid="video-count">80</strong> videos will be used' in count()
    assert ">120</strong>" in count(include_inconsistent="on")
    assert ">40</strong>" in count(strategy="random", limit="40")
    assert ">50</strong>" in count(strategy="balanced", limit="50")
    assert ">30</strong>" in count(label_value="false")
    assert ">3</strong>" in count(mode="aids", aid_list="1 2 3 3")
    assert "Correct the selection" in count(limit="-1", strategy="random")
    # Other fields' errors do not hide the count.
    assert ">80</strong>" in count(name="", test_ratio="0.9")


def test_the_count_endpoint_costs_one_query_and_needs_htmx(logged_in_client, registry_file, mixed_corpus,
                                                          django_assert_max_num_queries):
    with django_assert_max_num_queries(4):  # session, user, groups, the count
        logged_in_client.get("/datasets/build/count", form_data(strategy="balanced", limit="50"), **HTMX)

    assert logged_in_client.get("/datasets/build/count", form_data()).status_code == 302


def test_the_index_loads_the_count_as_the_form_changes(logged_in_client, registry_file):
    page = logged_in_client.get("/datasets/").content.decode()

    count = re.search(r'<p id="build-count"[^>]*>', page, re.S).group(0)
    assert 'hx-get="/datasets/build/count"' in count
    assert 'hx-trigger="load, change from:closest form, input delay:300ms from:closest form"' in count
    assert 'hx-include="closest form"' in count and 'hx-params="not csrfmiddlewaretoken"' in count


def test_a_large_build_needs_the_confirmation_box(submit, mixed_corpus, monkeypatch):
    monkeypatch.setattr(build_forms, "CONFIRM_ABOVE_VIDEOS", 50)

    refused = submit(form_data())  # strategy all: 80 videos

    assert refused.status_code == 400
    assert any("80 videos" in error for error in refused.context["form"].errors["confirm_large"])
    assert 'href="#id_confirm_large"' in refused.content.decode()
    assert counts() == NOTHING

    small = submit(form_data(strategy="random", limit="50"))
    assert small.status_code == 302  # at the threshold: no confirmation needed
    confirmed = submit(form_data(confirm_large="on"))
    assert confirmed.status_code == 302
    assert sorted(DatasetVersion.objects.values_list("total_records", flat=True)) == [50, 80]


def test_the_count_says_when_confirmation_is_needed(logged_in_client, registry_file, mixed_corpus, monkeypatch):
    monkeypatch.setattr(build_forms, "CONFIRM_ABOVE_VIDEOS", 50)

    body = logged_in_client.get("/datasets/build/count", form_data(), **HTMX).content.decode()

    assert "more than 50" in body and "I understand" in body


# --- cancel a running build, delete a version ---------------------------------------------


@pytest.fixture
def running(embedding_model):
    (version,) = make_versions(1, embedding_model, status=DatasetVersionStatus.BUILDING, name="running")
    (task,) = make_tasks(1, status=DatasetTaskStatus.RUNNING, version=version)
    DatasetTask.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now())  # a live worker
    return version, task


def test_an_admin_cancels_a_running_build(logged_in_client, running):
    version, task = running
    page = logged_in_client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert 'data-testid="cancel-build"' in page and "hx-confirm=" in page
    assert 'data-testid="delete-version"' not in page  # not while it is being built

    response = logged_in_client.post(f"/datasets/versions/{version.pk}/cancel", **HTMX)

    assert response.status_code == 200 and response["HX-Redirect"] == f"/datasets/versions/{version.pk}/"
    task.refresh_from_db()
    version.refresh_from_db()
    assert task.status == DatasetTaskStatus.CANCELLED and version.status == DatasetVersionStatus.FAILED
    after = logged_in_client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "cancelled" in after and 'data-testid="cancel-build"' not in after


def test_cancelling_a_finished_build_is_refused_with_a_message(logged_in_client, ready_version):
    response = logged_in_client.post(f"/datasets/versions/{ready_version.pk}/cancel", follow=True)

    assert "only pending or running tasks cancel" in response.content.decode()
    assert ready_version.tasks.get().status == DatasetTaskStatus.COMPLETED


def test_an_admin_deletes_a_version(logged_in_client, ready_version):
    page = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/").content.decode()
    assert 'data-testid="delete-version"' in page and "cannot be undone" in page

    response = logged_in_client.post(f"/datasets/versions/{ready_version.pk}/delete", follow=True)

    assert response.redirect_chain[-1][0] == "/datasets/"
    assert f"Deleted {ready_version.dataset.name} v{ready_version.number}" in response.content.decode()
    assert not DatasetVersion.objects.filter(pk=ready_version.pk).exists()


def test_a_version_being_built_is_not_deleted(logged_in_client, running):
    version, _ = running

    response = logged_in_client.post(f"/datasets/versions/{version.pk}/delete", follow=True)

    assert "cancel the build first" in response.content.decode()
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_labelers_see_no_cancel_or_delete_and_cannot_post_them(labeler_client, running, ready_version):
    version, task = running
    assert 'data-testid="cancel-build"' not in labeler_client.get(f"/datasets/versions/{version.pk}/").content.decode()
    page = labeler_client.get(f"/datasets/versions/{ready_version.pk}/").content.decode()
    assert 'data-testid="delete-version"' not in page

    assert labeler_client.post(f"/datasets/versions/{version.pk}/cancel").status_code == 403
    assert labeler_client.post(f"/datasets/versions/{ready_version.pk}/delete").status_code == 403
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.RUNNING
    assert DatasetVersion.objects.filter(pk=ready_version.pk).exists()


def test_cancel_and_delete_need_post(logged_in_client, ready_version):
    assert logged_in_client.get(f"/datasets/versions/{ready_version.pk}/delete").status_code == 405
    assert logged_in_client.get(f"/datasets/versions/{ready_version.pk}/cancel").status_code == 405


# --- a readable version page -----------------------------------------------------------------


def test_selection_reads_as_text_not_a_python_dict(logged_in_client, submit, corpus):
    submit(form_data(strategy="random", limit="3", label_value="true", title_contains="测试"))
    version = DatasetVersion.objects.get()

    page = logged_in_client.get(f"/datasets/versions/{version.pk}/").content.decode()

    selection = re.search(r'<dl class="selection"[^>]*>(.*?)</dl>', page, re.S).group(1)
    assert "{" not in selection and "&#x27;" not in selection
    assert "<dt>Strategy</dt><dd" in selection and ">random</dd>" in selection
    assert "<dt>Consensus</dt>" in selection and "yes (in scope)" in selection
    assert "<dt>Title contains</dt>" in selection and ">测试</dd>" in selection
    assert "<dt>Inconsistent videos</dt>" in selection and ">left out</dd>" in selection


def test_a_long_name_is_clipped_in_tables_with_the_full_name_in_its_title(logged_in_client, embedding_model):
    long_name = "n" * 200
    (version,) = make_versions(1, embedding_model, name=long_name)
    make_tasks(1, version=version)

    page = logged_in_client.get("/datasets/").content.decode()

    assert page.count(f'class="clip" title="{long_name} v1"') == 2  # versions and tasks tables
    assert ".clip { display:inline-block; max-width:" in page and "text-overflow:ellipsis" in page


def test_the_final_poll_replaces_the_requested_message(logged_in_client, ready_version):
    response = logged_in_client.get(f"/datasets/versions/{ready_version.pk}/progress", **HTMX)

    assert response.status_code == 286
    block = response.content.decode()
    oob = re.search(r'<div id="messages"[^>]*hx-swap-oob="true"[^>]*>(.*?)</div>', block, re.S)
    assert oob, block
    assert "build completed, 10 records" in oob.group(1)


def test_the_submit_message_does_not_claim_the_build_is_running(logged_in_client, submit, corpus):
    response = submit(form_data(strategy="random", limit="3"))

    page = logged_in_client.get(response["Location"]).content.decode()
    assert "Requested form v1 from 3 videos." in page and "Building" not in page


# --- one request object ------------------------------------------------------------------------


def test_a_build_request_reports_every_bad_field_at_once_and_normalises_the_rest():
    with pytest.raises(ValidationError) as raised:
        services.BuildRequest(embedding_model_key=MODEL_KEY, aid_list=[1, "x", 2**63], split_ratios=(0.5, 0.2),
                              seed=True, dataset_name=" ", description=5)

    assert set(raised.value.message_dict) == {"aid_list", "split_ratios", "seed", "dataset_name", "description"}
    assert "'x', 9223372036854775808" in raised.value.message_dict["aid_list"][0]

    request = services.BuildRequest(embedding_model_key=MODEL_KEY, aid_list=(3, 1, 3), split_ratios=[1, 0, 0],
                                    dataset_name="  named  ", description=None)
    assert (request.aid_list, request.split_ratios, request.dataset_name) == ([3, 1], (1.0, 0.0, 0.0), "named")
    assert (request.seed, request.description, request.uses_sampling) == (services.DEFAULT_SEED, "", False)
    assert services.BuildRequest(embedding_model_key=MODEL_KEY, aid_list=[1]).dataset_name == "default"


@pytest.mark.parametrize("fields,key,fragment", [
    ({"aid_list": [1], "sampling": {"strategy": "all"}}, "aid_list", "not both"),
    ({}, "aid_list", "must be a list of integer aids"),
    ({"sampling": {"strategy": "all", "colour": "red"}}, "sampling", "unknown key(s): colour"),
    ({"sampling": {"limit": 3}}, "sampling", "strategy is required"),
    ({"sampling": ["all"]}, "sampling", "must be an object"),
])
def test_a_build_request_chooses_exactly_one_source_of_videos(fields, key, fragment):
    with pytest.raises(ValidationError) as raised:
        services.BuildRequest(embedding_model_key=MODEL_KEY, **fields)

    assert fragment in " ".join(raised.value.message_dict[key])


def test_a_build_request_from_the_panel_body():
    request = services.BuildRequest.from_panel({
        "embedding_model": MODEL_KEY, "force_regenerate": True, "description": None, "name": "panel",
        "seed": 7, "include_inconsistent": True, "sampling": {"strategy": "random", "limit": 5, "seed": None},
    })

    assert request.sampling == services.SamplingRequest(strategy="random", limit=5)
    assert (request.dataset_name, request.description, request.seed) == ("panel", "", 7)
    assert request.force_regenerate and request.include_inconsistent
    assert request.split_ratios == services.DEFAULT_SPLIT_RATIOS
    defaults = services.BuildRequest.from_panel({"embedding_model": MODEL_KEY, "aid_list": [5]})
    assert (defaults.seed, defaults.aid_list, defaults.dataset_name) == (services.DEFAULT_SEED, [5], "default")


def test_the_service_samples_or_takes_the_list(mixed_corpus, registry_file):
    sampled = services.dataset_build_request(
        services.BuildRequest(embedding_model_key=MODEL_KEY, sampling=services.SamplingRequest("balanced", 10, seed=1)),
        enqueue=False,
    )
    listed = services.dataset_build_request(
        services.BuildRequest(embedding_model_key=MODEL_KEY, aid_list=[100_000, 100_001], selection={"source": "x"}),
        enqueue=False,
    )

    assert sampled.requested == 10 and sampled.sample.sampling_info["positives"] == 5
    assert sampled.task.dataset_version.selection["strategy"] == "balanced"
    assert listed.sample is None and listed.aid_list == [100_000, 100_001]
    assert listed.task.dataset_version.selection == {"source": "x"}
    assert listed.task.dataset_version.number == 2 and sampled.task.params["seed"] == services.DEFAULT_SEED


def test_the_form_defaults_to_the_one_default_seed(registry_file):
    assert build_forms.DatasetBuildForm().fields["seed"].initial == services.DEFAULT_SEED
