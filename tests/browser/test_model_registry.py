"""The model registry from the browser: a succeeded run's page links to the register
form, the run becomes version 1 (a candidate), a gate rule is added on the model's
page, and the version is moved candidate → staging → production on its page, each
answer swapped in place (htmx) with the gate's verdict shown. Then the promoted version
serves the uncertain queue, where a video is labeled with the keyboard."""

import pytest
from django.contrib.auth import get_user_model

from datasets.models import DatasetVersionItem
from labeling.models import Label, LabelSource
from tests.training.registry_factories import trained_run
from training.models import ModelStage, ModelVersion, RegisteredModel
from training.services import predictions_store


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


def test_register_a_run_and_promote_it_through_the_gate(logged_in_page, groups, screenshot_path):
    admin = get_user_model().objects.create_user("browser-registrar", password="pw-for-tests-1")
    admin.groups.add(groups["admins"])
    run = trained_run(seed=4)
    page = logged_in_page(admin)

    page.goto(f"/experiments/runs/{run.pk}/")
    page.click("[data-testid=register-model-link]")
    page.wait_for_url("**/training/models/register?run=*")
    assert page.locator("input[name=run]").input_value() == str(run.pk)
    page.fill("input[name=model_name]", "spam-detector")
    page.fill("textarea[name=description]", "first model")
    page.click("[data-testid=register-run]")
    page.wait_for_url("**/training/models/spam-detector/versions/1/")
    assert page.locator("#version-stage").get_attribute("data-stage") == "candidate"

    # A gate rule the version passes, added on the model's page.
    page.goto("/training/models/spam-detector/")
    page.select_option("select[name=rules-0-metric]", "accuracy")
    page.select_option("select[name=rules-0-kind]", "min")
    page.fill("input[name=rules-0-value]", "0.5")
    page.click("[data-testid=save-gate-rules]")
    page.wait_for_selector("[data-testid=gate-rules-saved]")
    assert RegisteredModel.objects.get(name="spam-detector").gate_rules == [{"metric": "accuracy", "min": 0.5}]

    page.goto("/training/models/spam-detector/versions/1/")
    page.fill("input[name=reason]", "looks good on the test split")
    page.click("[data-testid=move-to-staging]")
    page.wait_for_selector("#version-stage[data-stage=staging]")
    page.fill("input[name=reason]", "gate passes")
    page.click("[data-testid=move-to-production]")
    page.wait_for_selector("#version-stage[data-stage=production]")

    result = page.locator("[data-testid=transition-result]")
    assert result.get_attribute("data-status") == "200"
    assert "accuracy ≥ 0.5" in result.inner_text()
    assert result.locator("[data-testid=gate-report] li[data-passed=true]").count() == 1
    assert ModelVersion.objects.get(run=run).stage == ModelStage.PRODUCTION
    # The version's history was refreshed with the answer (out of band).
    assert "gate passes" in page.locator("[data-testid=version-history]").inner_text()
    # The gate's evaluation shows in the evaluations panel, reloaded after the move.
    page.wait_for_selector("[data-testid=evaluation-row][data-status=succeeded]")
    page.screenshot(path=screenshot_path("model-registry-promoted"), full_page=True)

    page.goto("/training/models/spam-detector/")
    assert "staging" in page.locator("[data-testid=history]").inner_text()
    page.screenshot(path=screenshot_path("model-registry-model"), full_page=True)

    # The production version's scores (as a scoring job writes them) serve the
    # uncertain queue: the probability nearest the threshold comes first.
    version = ModelVersion.objects.get(run=run)
    items = list(DatasetVersionItem.objects.filter(version=run.dataset_version).order_by("video__aid")[:3])
    probabilities = [version.threshold + 0.3, version.threshold - 0.01, version.threshold - 0.2]
    predictions_store(version, [item.video_id for item in items], [min(max(p, 0.0), 1.0) for p in probabilities],
                      [item.embedding_id for item in items])
    page.goto("/training/assisted/label?mode=uncertain&model=spam-detector")
    nearest = items[1].video
    assert page.locator("#label-card").get_attribute("data-video-aid") == str(nearest.aid)
    page.keyboard.press("1")
    page.wait_for_function(
        "before => document.querySelector('#label-card')?.dataset.videoAid !== before", arg=str(nearest.aid)
    )
    assert list(Label.objects.filter(user=admin).values_list("video_id", "value", "source")) == [
        (nearest.pk, True, LabelSource.HUMAN)
    ]
    page.screenshot(path=screenshot_path("model-registry-uncertain-queue"), full_page=True)
