"""Model-assisted labeling in a real browser: a trained run registered and promoted
through the gate serves the uncertain queue, and a labeler answers with the keyboard."""

from django.contrib.auth import get_user_model

from datasets.models import DatasetVersionItem
from labeling.models import Label, LabelSource
from tests.training.registry_factories import registered_version
from training.models import ModelStage, Prediction


def _card_aid(page) -> str:
    return page.locator("#label-card").get_attribute("data-video-aid")


def test_label_the_most_uncertain_video_with_the_keyboard(logged_in_page, screenshot_path, groups, settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    version = registered_version("vocal-synth", stage=ModelStage.PRODUCTION, rows=30)
    items = list(DatasetVersionItem.objects.filter(version=version.run.dataset_version).order_by("video__aid")[:5])
    probabilities = [0.97, 0.41, 0.08, 0.62, 0.55]  # the uncertain order: 4th (.05 from .5), 5th, 2nd, ...
    Prediction.objects.bulk_create([
        Prediction(model_version=version, video_id=item.video_id, embedding_id=item.embedding_id,
                   probability=probability, margin=abs(probability - version.threshold))
        for item, probability in zip(items, probabilities)
    ])
    by_margin = [item.video for _, item in sorted(zip(probabilities, items), key=lambda pair: abs(pair[0] - version.threshold))]
    other = get_user_model().objects.create_user("other-labeler")
    Label.objects.create(video=items[0].video, user=other, value=False)  # the model says yes at .97
    user = get_user_model().objects.create_user("assisted-labeler", password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    page = logged_in_page(user)

    page.goto("/training/assisted/label?mode=uncertain")
    assert _card_aid(page) == str(by_margin[0].aid)
    assert "vocal-synth v1" in page.locator("[data-testid=serving-version]").inner_text()
    assert page.locator("[data-testid=model-hint]").count() == 0  # off until the labeler turns it on

    page.keyboard.press("1")
    page.wait_for_function(
        "before => document.querySelector('#label-card')?.dataset.videoAid !== before", arg=str(by_margin[0].aid)
    )
    assert _card_aid(page) == str(by_margin[1].aid)
    page.wait_for_function("document.querySelector('[data-testid=labeled-today]').textContent.trim() === '1'")

    page.click("[data-testid=hint-toggle]")
    page.wait_for_selector("[data-testid=model-hint]")
    assert _card_aid(page) == str(by_margin[1].aid)  # the same card, now with the model's view
    page.screenshot(path=screenshot_path("assisted-labeling"), full_page=True)

    assert list(Label.objects.filter(user=user).values_list("video_id", "value", "source")) == [
        (by_margin[0].pk, True, LabelSource.HUMAN)
    ]

    page.click("text=Where the model disagrees with consensus")
    page.wait_for_selector("[data-testid=disagreements]")
    assert page.locator("[data-testid=disagreement-count]").inner_text() == "1"
    assert page.locator(f"tr[data-aid='{items[0].video.aid}']").count() == 1
    page.screenshot(path=screenshot_path("assisted-disagreements"), full_page=True)
