"""The registry's pages: the team reads them, only admins write (labelers and outsiders
get 403 and nothing changes); registering a run through the form; stage changes through
the version page with the refusals shown inline (stale page, illegal move, failing gate
rule named) and nothing changed; gate rules edited with errors at their fields;
``?at=``; the list and the model page read in a fixed number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.training.registry_factories import registered_version, trained_run
from training import services
from training.models import ModelStage, ModelVersion, ModelVersionTransition, RegisteredModel

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def labeler(make_user):
    return make_user("lea", group="labelers")


@pytest.fixture
def outsider(make_user):
    return make_user("otto", group=None)


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def version(admin):
    return registered_version("spam", user=admin)


def version_url(version: ModelVersion) -> str:
    return reverse("training:model-version", args=[version.registered_model.name, version.number])


def transition_url(version: ModelVersion) -> str:
    return reverse("training:model-version-transition", args=[version.registered_model.name, version.number])


def move(client, version, to_stage, *, lock_version=None, htmx=True, **extra):
    data = {"to_stage": to_stage, "lock_version": lock_version or version.lock_version, "reason": "test", **extra}
    return client.post(transition_url(version), data, **(HTMX if htmx else {}))


# --- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["labelers", "reviewers", "admins"])
def test_every_page_renders_for_the_team(make_user, as_user, version, group):
    client = as_user(make_user("member", group=group))
    model = version.registered_model

    listing = client.get(reverse("training:registry"))
    page = client.get(reverse("training:registered-model", args=[model.name]))
    detail = client.get(version_url(version))
    register = client.get(reverse("training:model-register") + f"?run={version.run_id}")

    assert [listing.status_code, page.status_code, detail.status_code, register.status_code] == [200] * 4
    assert 'data-model="spam"' in listing.content.decode()
    assert 'data-version="1"' in page.content.decode() and "registered from run" in page.content.decode()
    body = detail.content.decode()
    assert reverse("experiments:run-detail", args=[version.run_id]) in body
    assert reverse("datasets:version-detail", args=[version.run.dataset_version_id]) in body
    assert f'value="{version.run_id}"' in register.content.decode()
    # Only admins see the write controls.
    is_admin = group == "admins"
    assert ('data-testid="transition-form"' in body) is is_admin
    assert ('data-testid="gate-rules-form"' in page.content.decode()) is is_admin
    assert ('data-testid="create-model"' in listing.content.decode()) is is_admin


def test_the_pages_refuse_outsiders(as_user, outsider, version):
    client = as_user(outsider)
    for url in (reverse("training:registry"), reverse("training:registered-model", args=["spam"]), version_url(version),
                reverse("training:model-register")):
        assert client.get(url).status_code == 403


def test_an_unknown_model_or_version_is_a_404(as_user, labeler, version):
    client = as_user(labeler)
    assert client.get(reverse("training:registered-model", args=["nope"])).status_code == 404
    assert client.get(reverse("training:model-version", args=["spam", 9])).status_code == 404
    assert client.get("/training/models/bad%00name/").status_code == 404


def test_the_version_page_shows_the_run_metrics_and_the_legal_moves_only(as_user, admin, version):
    body = as_user(admin).get(version_url(version)).content.decode()

    assert 'data-testid="move-to-staging"' in body and 'data-testid="move-to-archived"' in body
    assert 'data-testid="move-to-production"' not in body and 'data-testid="move-to-candidate"' not in body
    assert 'data-testid="lock-version">1<' in body
    f1 = version.run.metric_summaries.get(key="test_f1").latest_value
    assert f"{f1:.4f}" in body


def test_panels_of_other_pages_are_loaded_only_when_their_urls_exist(as_user, admin, version):
    from django.urls import NoReverseMatch

    body = as_user(admin).get(version_url(version)).content.decode()
    for key, name in (("evaluation", "training:evaluation-panel"), ("onnx", "training:onnx-panel"),
                      ("scoring", "training:scoring-panel"), ("model-card", "training:model-card")):
        try:
            url = reverse(name, args=[version.pk])
        except NoReverseMatch:
            assert f'data-testid="{key}-panel"' not in body and f'data-testid="{key}-link"' not in body
        else:
            assert url in body


# --- writing: permissions -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["labeler", "outsider"])
def test_writes_are_refused_to_non_admins_and_change_nothing(request, as_user, version, who):
    client = as_user(request.getfixturevalue(who))
    run = trained_run(seed=3)
    model = version.registered_model

    answers = [
        client.post(reverse("training:registered-model-create"), {"name": "new"}),
        client.post(reverse("training:model-register"), {"run": run.pk, "model_name": "spam"}),
        client.post(reverse("training:registered-model-gates", args=["spam"]), {
            "rules-TOTAL_FORMS": 1, "rules-INITIAL_FORMS": 0, "rules-0-metric": "f1", "rules-0-kind": "min",
            "rules-0-value": "0.5"}),
        move(client, version, ModelStage.STAGING),
    ]

    assert [answer.status_code for answer in answers] == [403] * 4
    assert list(RegisteredModel.objects.values_list("name", flat=True)) == ["spam"]
    assert model.versions.count() == 1
    version.refresh_from_db()
    model.refresh_from_db()
    assert (version.stage, version.lock_version, model.gate_rules) == (ModelStage.CANDIDATE, 1, [])


# --- writing: models and registering --------------------------------------------------------


def test_an_admin_creates_a_model_and_a_taken_name_is_refused_at_its_field(as_user, admin, version):
    client = as_user(admin)

    created = client.post(reverse("training:registered-model-create"), {"name": "ham", "description": "d"}, **HTMX)
    taken = client.post(reverse("training:registered-model-create"), {"name": "ham"}, **HTMX)
    slash = client.post(reverse("training:registered-model-create"), {"name": "a/b"})

    assert created.status_code == 200 and created["HX-Redirect"] == reverse("training:registered-model", args=["ham"])
    assert taken.status_code == 200 and "already exists" in taken.content.decode()
    assert slash.status_code == 400 and "must not contain" in slash.content.decode()
    assert sorted(RegisteredModel.objects.values_list("name", flat=True)) == ["ham", "spam"]


def test_registering_a_run_through_the_form_makes_version_1_a_candidate(as_user, admin):
    client = as_user(admin)
    run = trained_run(seed=2)

    answer = client.post(reverse("training:model-register"), {"run": run.pk, "model_name": "fresh",
                                                             "description": "from the form"})

    version = ModelVersion.objects.get(run=run)
    assert (version.registered_model.name, version.number, version.stage) == ("fresh", 1, ModelStage.CANDIDATE)
    assert version.description == "from the form" and version.created_by == admin
    assert answer.status_code == 302 and answer["Location"] == version_url(version)


def test_registering_a_bad_run_shows_the_error_at_the_run_field_and_writes_nothing(as_user, admin, version):
    client = as_user(admin)

    again = client.post(reverse("training:model-register"), {"run": version.run_id, "model_name": "spam"}, **HTMX)
    unknown = client.post(reverse("training:model-register"), {"run": 999999, "model_name": "other"})

    assert again.status_code == 200 and "is already version 1 of spam" in again.content.decode()
    assert unknown.status_code == 400 and "no run 999999" in unknown.content.decode()
    assert ModelVersion.objects.count() == 1 and RegisteredModel.objects.count() == 1


def test_the_run_page_links_a_succeeded_run_to_the_register_form(as_user, admin, labeler):
    run = trained_run(seed=4)
    link = reverse("training:model-register") + f"?run={run.pk}"

    assert link in as_user(admin).get(reverse("experiments:run-detail", args=[run.pk])).content.decode()
    assert link not in as_user(labeler).get(reverse("experiments:run-detail", args=[run.pk])).content.decode()


# --- writing: stages ------------------------------------------------------------------------


def test_moving_through_the_page_changes_the_stage_and_writes_the_audit_row(as_user, admin, version):
    client = as_user(admin)

    answer = move(client, version, ModelStage.STAGING)

    body = answer.content.decode()
    assert answer.status_code == 200 and 'data-testid="transition-result" data-status="200"' in body
    assert "moved from candidate to staging" in body and 'data-stage="staging"' in body
    assert 'data-testid="lock-version">2<' in body and 'data-testid="move-to-production"' in body
    assert 'id="version-history" hx-swap-oob="true"' in body  # the history follows
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == (ModelStage.STAGING, 2)
    last = ModelVersionTransition.objects.filter(version=version).last()
    assert (last.from_stage, last.to_stage, last.user, last.reason) == ("candidate", "staging", admin, "test")


def test_without_htmx_a_move_redirects_and_a_refusal_is_the_page_with_its_status(as_user, admin, version):
    client = as_user(admin)

    moved = move(client, version, ModelStage.STAGING, htmx=False)
    stale = move(client, version, ModelStage.PRODUCTION, lock_version=1, htmx=False)

    assert moved.status_code == 302 and moved["Location"] == version_url(version)
    assert stale.status_code == 409 and "changed since you loaded it" in stale.content.decode()


def test_a_stale_page_is_refused_with_a_conflict_and_nothing_changes(as_user, admin, version):
    client = as_user(admin)
    services.model_version_transition(version.pk, to_stage=ModelStage.STAGING)  # another tab

    answer = move(client, version, ModelStage.ARCHIVED, lock_version=1)

    body = answer.content.decode()
    assert 'data-status="409"' in body and "changed since you loaded it" in body
    # The current state is shown with its own moves (the stale lock version is gone).
    assert 'data-stage="staging"' in body and 'data-testid="move-to-production"' in body
    assert 'name="lock_version" value="2"' in body
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == (ModelStage.STAGING, 2)


def test_an_illegal_move_is_refused_with_the_legal_ones_named(as_user, admin, version):
    answer = move(as_user(admin), version, ModelStage.PRODUCTION)

    body = answer.content.decode()
    assert 'data-status="400"' in body and "it can move to staging or archived, not production" in body
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == (ModelStage.CANDIDATE, 1)


def test_the_gate_refuses_a_promotion_naming_the_rule_and_nothing_changes(as_user, admin, version):
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "f1", "min": 1.0},
                                                                                {"metric": "accuracy", "min": 0.0}])
    version = services.model_version_transition(version.pk, to_stage=ModelStage.STAGING)
    rows_before = ModelVersionTransition.objects.count()

    answer = move(as_user(admin), version, ModelStage.PRODUCTION)

    body = answer.content.decode()
    assert 'data-status="409"' in body and "gate rule f1 ≥ 1 failed" in body
    assert 'data-passed="false"' in body and 'data-passed="true"' in body  # each rule's verdict
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == (ModelStage.STAGING, 2)
    assert ModelVersionTransition.objects.count() == rows_before


def test_a_passing_gate_promotes_and_archives_the_previous_production_version(as_user, admin, version):
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "accuracy", "min": 0.5}])
    first = registered_version("spam", stage=ModelStage.PRODUCTION, seed=5)
    version = services.model_version_transition(version.pk, to_stage=ModelStage.STAGING)

    answer = move(as_user(admin), version, ModelStage.PRODUCTION,
                  gate_dataset_version=str(version.run.dataset_version_id))

    body = answer.content.decode()
    assert 'data-status="200"' in body and "accuracy ≥ 0.5" in body and 'data-passed="true"' in body
    version.refresh_from_db()
    first.refresh_from_db()
    assert (version.stage, first.stage) == (ModelStage.PRODUCTION, ModelStage.ARCHIVED)


# --- gate rules -------------------------------------------------------------------------------


def rules_post(rows: list[tuple[str, str, str]], *, initial: int = 0, delete: tuple[int, ...] = ()) -> dict:
    data = {"rules-TOTAL_FORMS": len(rows), "rules-INITIAL_FORMS": initial}
    for index, (metric, kind, value) in enumerate(rows):
        data |= {f"rules-{index}-metric": metric, f"rules-{index}-kind": kind, f"rules-{index}-value": value}
        if index in delete:
            data[f"rules-{index}-DELETE"] = "on"
    return data


def test_gate_rules_are_added_and_removed_through_the_editor(as_user, admin, version):
    client = as_user(admin)
    url = reverse("training:registered-model-gates", args=["spam"])
    model = version.registered_model

    added = client.post(url, rules_post([("f1", "min", "0.7"), ("roc_auc", "max_drop", "0.02")]), **HTMX)
    model.refresh_from_db()
    assert added.status_code == 200 and "Gate rules of spam saved: 2 rules." in added.content.decode()
    assert model.gate_rules == [{"metric": "f1", "min": 0.7}, {"metric": "roc_auc", "max_drop": 0.02}]

    client.post(url, rules_post([("f1", "min", "0.7"), ("roc_auc", "max_drop", "0.02"), ("", "min", "")],
                                initial=2, delete=(0,)), **HTMX)
    model.refresh_from_db()
    assert model.gate_rules == [{"metric": "roc_auc", "max_drop": 0.02}]


def test_bad_gate_rules_are_shown_at_their_fields_and_nothing_is_saved(as_user, admin, version):
    client = as_user(admin)
    url = reverse("training:registered-model-gates", args=["spam"])

    answer = client.post(url, rules_post([("f1", "min", "1.5"), ("loss", "min", "0.3"), ("", "min", "0.2")]), **HTMX)

    body = answer.content.decode()
    assert answer.status_code == 200 and 'data-testid="gate-rules-errors"' in body
    assert "f1 lies between 0 and 1 (got 1.5)" in body
    assert "loss is better when lower: use max, not min" in body
    assert "Choose a metric." in body
    version.registered_model.refresh_from_db()
    assert version.registered_model.gate_rules == []
    plain = client.post(url, rules_post([("f1", "min", "1.5")]))
    assert plain.status_code == 400


# --- in production at -------------------------------------------------------------------------


def test_in_production_at_answers_for_a_time(as_user, labeler, admin):
    from django.utils import timezone

    version = registered_version("spam", stage=ModelStage.PRODUCTION, user=admin)
    promoted_at = ModelVersionTransition.objects.get(version=version, to_stage=ModelStage.PRODUCTION).created_at
    client = as_user(labeler)
    url = reverse("training:registered-model", args=["spam"])
    before = (promoted_at - timezone.timedelta(seconds=5)).isoformat()
    after = (promoted_at + timezone.timedelta(seconds=5)).isoformat()

    earlier = client.get(url, {"at": before}, **HTMX).content.decode()
    later = client.get(url, {"at": after}).content.decode()
    bad = client.get(url, {"at": "yesterday"}, **HTMX)

    assert "no version was in production" in earlier and 'id="gate-rules"' not in earlier  # only the block
    assert "version 1</a> was in production" in later
    assert bad.status_code == 200 and "Enter a valid date/time" in bad.content.decode()


# --- query counts -----------------------------------------------------------------------------


def _bulk_versions(version: ModelVersion, count: int) -> None:
    """``count`` more versions of the model (same run's weights, other runs' rows) and
    their audit rows, written directly: only the reads are measured."""
    from tests.experiments.factories import RunFactory

    runs = [RunFactory(experiment=version.run.experiment, dataset_version=version.run.dataset_version)
            for _ in range(count)]
    created = ModelVersion.objects.bulk_create([
        ModelVersion(registered_model=version.registered_model, number=version.number + 1 + index, run=run,
                     embedding_model_id=version.embedding_model_id, input_dimensions=version.input_dimensions,
                     threshold=version.threshold, architecture_key=version.architecture_key,
                     weights_sha256=version.weights_sha256, created_by=version.created_by)
        for index, run in enumerate(runs)
    ])
    ModelVersionTransition.objects.bulk_create([
        ModelVersionTransition(registered_model=version.registered_model, version=item, from_stage="",
                               to_stage=ModelStage.CANDIDATE, user=version.created_by)
        for item in created
    ])


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_list_and_the_model_page_read_in_a_fixed_number_of_queries(as_user, admin):
    client = as_user(admin)
    small = registered_version("small", user=admin, seed=1)
    large = registered_version("large", user=admin, seed=2)
    _bulk_versions(small, 2)
    model_small = _queries(client, reverse("training:registered-model", args=["small"]))
    listing_small = _queries(client, reverse("training:registry"))

    _bulk_versions(large, 29)
    for index in range(10):
        services.registered_model_create(name=f"extra-{index}")

    assert _queries(client, reverse("training:registered-model", args=["large"])) == model_small
    assert _queries(client, reverse("training:registry")) == listing_small
