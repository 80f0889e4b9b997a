"""Training a run from the browser, end to end: the form rendered from the schema (an
architecture switch swaps its fields), a real worker trains the run, and the run page
follows it until it has succeeded with its curves drawn."""

import pytest
from django.contrib.auth import get_user_model

from experiments.models import Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.support.waiting import HANG_DEADLINE_SECONDS
from tests.training.factories import separable_dataset_version

pytestmark = pytest.mark.worker

#: Only a hang reaches it: the worker trains a few epochs on 60 rows.
HANG_MS = HANG_DEADLINE_SECONDS * 1000

# True once a curve's canvas holds a non-transparent pixel: uPlot has drawn on it.
CANVAS_DRAWN = """() => {
  const canvas = document.querySelector('#run-curves figure[data-drawn=true] canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) if (pixels[alpha]) return true;
  return false;
}"""


def _admin(groups):
    admin = get_user_model().objects.create_user("browser-trainer", password="pw-for-tests-1")
    admin.groups.add(groups["admins"])
    return admin


def test_a_run_submitted_from_the_form_trains_and_its_page_shows_it_succeeded(
        logged_in_page, groups, celery_worker_process, screenshot_path):
    experiment = ExperimentFactory(name="browser training",
                                   default_dataset_version=separable_dataset_version(rows=60, seed=4, separation=1.0))
    page = logged_in_page(_admin(groups))

    page.goto(f"/training/runs/new?experiment={experiment.pk}")
    assert page.locator("select[name=dataset_version]").input_value() == str(experiment.default_dataset_version_id)
    page.fill("input[name=learning_rate]", "0.05")

    # The architecture swaps the hyperparameter fields; what both share keeps its value.
    page.select_option("select[name=architecture]", "logreg")
    page.wait_for_selector("#hyperparameters[data-architecture=logreg]")
    assert page.locator("input[name=hidden_sizes]").count() == 0
    assert page.locator("input[name=learning_rate]").input_value() == "0.05"
    page.select_option("select[name=architecture]", "mlp")
    page.wait_for_selector("#hyperparameters[data-architecture=mlp] input[name=hidden_sizes]")

    page.fill("input[name=epochs]", "3")
    page.fill("input[name=batch_size]", "8")
    page.fill("input[name=hidden_sizes]", "16")
    page.fill("input[name=early_stopping_patience]", "0")
    # The viewport only: right after a full-page screenshot Chromium may miss the next click.
    page.screenshot(path=screenshot_path("training-run-form"))
    page.click("#run-form button[type=submit]")

    page.wait_for_url("**/experiments/runs/*/")
    run = Run.objects.get()
    assert page.url.endswith(f"/experiments/runs/{run.pk}/")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=run-status]')?.textContent.trim() === 'Succeeded'",
        timeout=HANG_MS,
    )
    page.wait_for_selector("#run-curves[data-polling=false]", timeout=HANG_MS)
    page.wait_for_function(CANVAS_DRAWN, timeout=HANG_MS)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.params.get(key="epochs").value == "3" and run.params.get(key="learning_rate").value == "0.05"
    assert page.locator("[data-testid=final-metrics]").is_visible()
    page.screenshot(path=screenshot_path("training-run-succeeded"), full_page=True)
