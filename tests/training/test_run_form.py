"""The new-run page: a form rendered from the architecture's hyperparameter schema,
validated through ``services.run_queue`` (per-field errors, nothing queued), open to
the team, submitted by admins."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from experiments.models import Param, Run, RunStatus
from tests.experiments.factories import ExperimentFactory, ready_dataset_version
from training.architectures import ARCHITECTURES

NEW = "/training/runs/new"
HYPERPARAMETERS = "/training/runs/new/hyperparameters"
CREATE = "/training/runs/"
HTMX = {"HTTP_HX_REQUEST": "true"}


class _Elements(HTMLParser):
    """Every start tag as (tag, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def elements(response) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(response.content.decode())
    return parser.elements


def field(response, name: str) -> tuple[str, dict[str, str | None]]:
    """The one input/select named ``name`` (tag, attributes)."""
    found = [(tag, attrs) for tag, attrs in elements(response)
             if tag in ("input", "select", "textarea") and attrs.get("name") == name]
    assert len(found) == 1, f"{len(found)} fields named {name!r}"
    return found[0]


def field_names(response) -> set[str]:
    return {attrs["name"] for tag, attrs in elements(response)
            if tag in ("input", "select", "textarea") and attrs.get("name")}


def options(response, name: str) -> list[tuple[str, bool]]:
    """(value, selected) of the options of select ``name``, in order."""
    result, inside = [], False
    for tag, attrs in elements(response):
        if tag == "select":
            inside = attrs.get("name") == name
        elif tag == "option" and inside:
            result.append((attrs["value"], "selected" in attrs))
    return result


@pytest.fixture
def admin(make_user):
    return make_user("root", group="admins")


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def experiment(admin):
    return ExperimentFactory(owner=admin)


def form_data(experiment, **overrides) -> dict[str, str]:
    """What the page posts for the mlp with its defaults (batch_norm unchecked: absent)."""
    data = {
        "experiment": str(experiment.pk),
        "dataset_version": str(experiment.default_dataset_version_id),
        "architecture": "mlp",
        "name": "",
        "hyperparameters_of": "mlp",
    }
    for parameter in ARCHITECTURES["mlp"].schema:
        if parameter.name != "batch_norm":
            data[parameter.name] = parameter.as_text(parameter.default)
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- rendering ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_renders_one_input_per_hyperparameter_from_the_schema(admin_client, experiment):
    response = admin_client.get(f"{NEW}?experiment={experiment.pk}")

    assert response.status_code == 200
    tag, attrs = field(response, "learning_rate")
    assert tag == "input"
    assert {key: attrs[key] for key in ("type", "min", "max", "step", "value")} == {
        "type": "number", "min": "1e-06", "max": "1.0", "step": "any", "value": "0.001",
    }
    _, epochs = field(response, "epochs")
    assert (epochs["type"], epochs["min"], epochs["max"], epochs["step"], epochs["value"]) == (
        "number", "1", "1000", "1", "30")
    assert field(response, "optimizer")[0] == "select"
    assert options(response, "optimizer") == [("adam", False), ("adamw", True), ("sgd", False)]
    _, batch_norm = field(response, "batch_norm")
    assert batch_norm["type"] == "checkbox" and "checked" not in batch_norm
    _, hidden = field(response, "hidden_sizes")
    assert (hidden["type"], hidden["value"]) == ("text", "256,64")
    assert field_names(response) >= set(ARCHITECTURES["mlp"].schema.names)
    # Help text, described-by its input; the architecture's own parameters apart.
    assert "Optimiser step size." in response.content.decode()
    assert batch_norm["aria-describedby"] == "id_batch_norm_helptext"
    fieldsets = [attrs["data-group"] for tag, attrs in elements(response) if tag == "fieldset"]
    assert fieldsets == ["training", "architecture"]


@pytest.mark.django_db
def test_the_experiment_and_its_default_version_are_preselected_and_only_ready_versions_offered(
        admin_client, experiment):
    from datasets.models import DatasetVersionStatus
    from tests.experiments.factories import dataset_version

    building = dataset_version(DatasetVersionStatus.BUILDING)
    other_ready = ready_dataset_version()
    ExperimentFactory(name="deleted one", deleted_at=timezone.now())

    response = admin_client.get(f"{NEW}?experiment={experiment.pk}")

    assert (str(experiment.pk), True) in options(response, "experiment")
    offered = [value for value, _ in options(response, "experiment") if value]
    assert offered == [str(experiment.pk)]  # the deleted experiment is not offered
    versions = dict(options(response, "dataset_version"))
    assert versions[str(experiment.default_dataset_version_id)] is True
    assert str(other_ready.pk) in versions and str(building.pk) not in versions


@pytest.mark.django_db
def test_an_unknown_experiment_or_architecture_in_the_address_falls_back(admin_client, experiment):
    response = admin_client.get(f"{NEW}?experiment=999999&architecture=nope")

    assert response.status_code == 200
    assert [value for value, selected in options(response, "experiment") if selected] == [""]
    assert ("mlp", True) in options(response, "architecture")


@pytest.mark.django_db
def test_switching_the_architecture_swaps_the_fields_and_keeps_the_shared_values(admin_client, experiment):
    response = admin_client.get(HYPERPARAMETERS, {"architecture": "logreg", "hyperparameters_of": "mlp",
                                                  "learning_rate": "0.05", "hidden_sizes": "32"}, **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="hyperparameters"')  # the partial only
    names = field_names(response)
    assert "hidden_sizes" not in names and "batch_norm" not in names
    assert names >= set(ARCHITECTURES["logreg"].schema.names)
    assert field(response, "learning_rate")[1]["value"] == "0.05"  # what was typed survives the swap

    back = admin_client.get(HYPERPARAMETERS, {"architecture": "mlp", "hyperparameters_of": "logreg"}, **HTMX)
    assert field(back, "hidden_sizes")[1]["value"] == "256,64"
    assert "checked" not in field(back, "batch_norm")[1]


@pytest.mark.django_db
def test_a_checkbox_keeps_its_state_across_a_swap(admin_client, experiment):
    checked = admin_client.get(HYPERPARAMETERS, {"architecture": "mlp", "hyperparameters_of": "mlp",
                                                 "batch_norm": "on"}, **HTMX)
    unchecked = admin_client.get(HYPERPARAMETERS, {"architecture": "mlp", "hyperparameters_of": "mlp"}, **HTMX)

    assert "checked" in field(checked, "batch_norm")[1]
    assert "checked" not in field(unchecked, "batch_norm")[1]


@pytest.mark.django_db
def test_choosing_another_experiment_presets_its_default_version(admin_client, experiment):
    other = ExperimentFactory(name="other")
    bare = ExperimentFactory(name="bare", default_dataset_version=None)
    chosen = str(experiment.default_dataset_version_id)
    url = "/training/runs/new/dataset-version"

    switched = admin_client.get(url, {"experiment": other.pk, "dataset_version": chosen}, **HTMX)
    kept = admin_client.get(url, {"experiment": bare.pk, "dataset_version": chosen}, **HTMX)

    assert switched.content.decode().lstrip().startswith('<div id="dataset-version-field">')
    assert [value for value, selected in options(switched, "dataset_version") if selected] == [
        str(other.default_dataset_version_id)]
    assert [value for value, selected in options(kept, "dataset_version") if selected] == [chosen]


@pytest.mark.django_db
def test_the_partial_without_htmx_redirects_to_the_page(admin_client):
    response = admin_client.get(HYPERPARAMETERS, {"architecture": "logreg"})

    assert response.status_code == 302
    assert response["Location"] == f"{NEW}?architecture=logreg"


@pytest.mark.django_db
def test_the_page_costs_the_same_queries_for_2_and_30_experiments_and_versions(admin_client, experiment,
                                                                            django_assert_num_queries):
    ExperimentFactory()
    with CaptureQueriesContext(connection) as few:
        admin_client.get(f"{NEW}?experiment={experiment.pk}")
    ExperimentFactory.create_batch(28)
    with django_assert_num_queries(len(few)):
        response = admin_client.get(f"{NEW}?experiment={experiment.pk}")
    assert len([value for value, _ in options(response, "experiment") if value]) == 30
    assert len([value for value, _ in options(response, "dataset_version") if value]) == 30


# --- permissions --------------------------------------------------------------------


@pytest.mark.django_db
def test_team_members_see_the_form_but_only_admins_submit(client, make_user, experiment):
    client.force_login(make_user("lab", group="labelers"))

    page = client.get(f"{NEW}?experiment={experiment.pk}")
    assert page.status_code == 200
    assert 'data-testid="runners-only"' in page.content.decode()
    (submit,) = [attrs for tag, attrs in elements(page) if tag == "button" and attrs.get("class") == "primary"]
    assert "disabled" in submit

    refused = client.post(CREATE, form_data(experiment))
    assert refused.status_code == 403
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_people_outside_the_team_cannot_see_the_form(client, make_user, experiment):
    client.force_login(make_user("visitor", group=None))

    assert client.get(NEW).status_code == 403
    assert client.get(HYPERPARAMETERS, {"architecture": "mlp"}, **HTMX).status_code == 403
    assert client.get("/training/runs/new/dataset-version", {"experiment": experiment.pk}, **HTMX).status_code == 403
    assert client.post(CREATE, form_data(experiment)).status_code == 403
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_the_form_is_post_only_for_submission(admin_client):
    assert admin_client.get(CREATE).status_code == 405


# --- validation ---------------------------------------------------------------------


@pytest.mark.django_db
def test_bad_values_are_shown_at_their_fields_and_nothing_is_queued(admin_client, experiment,
                                                                  django_capture_on_commit_callbacks):
    data = form_data(experiment, learning_rate="5", epochs="many", hidden_sizes="64,0", optimizer="rmsprop")

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(CREATE, data)

    assert response.status_code == 400
    assert Run.objects.count() == 0 and not Param.objects.exists() and callbacks == []
    html = response.content.decode()
    assert 'data-testid="error-summary"' in html and "There are 4 problems" in html
    for name, message in (("learning_rate", "must be between 1e-06 and 1 (got 5)"),
                          ("epochs", "must be an integer (got &#x27;many&#x27;)"),
                          ("hidden_sizes", "each item must be between 1 and 8192 (got 0)"),
                          ("optimizer", "must be one of: adam, adamw, sgd")):
        assert f'href="#id_{name}"' in html  # the summary links to the field
        group = html[html.index(f'<label for="id_{name}"'):]
        group = group[:group.index(f'id="id_{name}"')]  # from the field's label to its input
        assert 'class="errorlist' in group and message in group, name
        assert field(response, name)[1].get("aria-invalid") == "true"
    # What was typed is shown again, not the defaults.
    assert field(response, "learning_rate")[1]["value"] == "5"


@pytest.mark.django_db
def test_bad_values_over_htmx_swap_the_form_with_a_200(admin_client, experiment):
    response = admin_client.post(CREATE, form_data(experiment, dropout="0.95"), **HTMX)

    assert response.status_code == 200  # htmx swaps only 2xx
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card" id="run-form">')
    assert "must be between 0 and 0.9 (got 0.95)" in html
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_missing_choices_and_an_unready_version_are_refused(admin_client, experiment):
    from datasets.models import DatasetVersionStatus
    from tests.experiments.factories import dataset_version

    building = dataset_version(DatasetVersionStatus.BUILDING)
    response = admin_client.post(CREATE, form_data(experiment, dataset_version=str(building.pk),
                                                   architecture="transformer", epochs=""))

    assert response.status_code == 400
    html = response.content.decode()
    assert 'href="#id_dataset_version"' in html and 'href="#id_architecture"' in html
    assert not Run.objects.exists()


# --- success ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_valid_form_queues_the_run_with_its_params_and_opens_its_page(admin_client, experiment,
                                                                       django_capture_on_commit_callbacks):
    data = form_data(experiment, name="wider", learning_rate="0.01", hidden_sizes="128, 32", batch_norm="on",
                     optimizer="sgd", seed="7")

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(CREATE, data)

    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/experiments/runs/{run.pk}/" == reverse("experiments:run-detail", args=[run.pk])
    assert len(callbacks) == 1  # the job, sent to the training queue once committed
    assert (run.status, run.name, run.architecture_key, run.seed, run.experiment_id, run.dataset_version_id) == (
        RunStatus.QUEUED, "wider", "mlp", 7, experiment.pk, experiment.default_dataset_version_id)
    params = dict(run.params.values_list("key", "value"))
    assert params["learning_rate"] == "0.01"
    assert params["hidden_sizes"] == "128,32"
    assert params["batch_norm"] == "true"
    assert params["optimizer"] == "sgd"
    assert set(params) == set(ARCHITECTURES["mlp"].schema.names)


@pytest.mark.django_db
def test_a_logreg_run_over_htmx_is_sent_to_its_page_by_htmx(admin_client, experiment):
    response = admin_client.post(CREATE, form_data(experiment, architecture="logreg", hidden_sizes=None), **HTMX)

    run = Run.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/experiments/runs/{run.pk}/"
    assert run.architecture_key == "logreg"
    assert "hidden_sizes" not in dict(run.params.values_list("key", "value"))


@pytest.mark.django_db
def test_batch_norm_unchecked_is_recorded_false(admin_client, experiment):
    admin_client.post(CREATE, form_data(experiment))

    assert Run.objects.get().params.get(key="batch_norm").value == "false"
