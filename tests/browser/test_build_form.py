"""The dataset build form in a real browser: the live count, the error summary that
takes the focus, and a version page whose final state replaces the live one."""

from django.contrib.auth import get_user_model
from django.utils import timezone

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersionStatus
from datasets.services import dataset_task_cancel, embedding_models_sync
from tests.datasets.conftest import MODEL_KEY, embedding_server, registry_file  # noqa: F401 (fixtures)
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos
from tests.datasets.panel_fixtures import make_tasks, make_versions

COUNT = "[data-testid=video-count]"


def _admin(groups):
    admin = get_user_model().objects.create_user("browser-admin", password="pw-for-tests-1")
    admin.groups.add(groups["admins"])
    return admin


def _corpus():
    labelers = make_labelers(3, prefix="browser")
    label(make_videos(12, start_aid=10_000), labelers, POSITIVE)
    label(make_videos(8, start_aid=20_000), labelers, NEGATIVE)
    label(make_videos(3, start_aid=30_000), labelers, (True, True, False))  # disagreement: not built


def _wait_for_count(page, text: str) -> None:
    page.wait_for_function(
        "text => document.querySelector('[data-testid=video-count]')?.textContent.trim() === text", arg=text
    )


def test_the_count_follows_the_form_and_errors_take_the_focus(logged_in_page, groups, registry_file,  # noqa: F811
                                                             screenshot_path):
    _corpus()
    page = logged_in_page(_admin(groups))

    page.goto("/datasets/")
    _wait_for_count(page, "20")  # strategy all: the 20 videos labelers agree on
    page.select_option("select[name=strategy]", "random")
    page.fill("input[name=limit]", "7")
    _wait_for_count(page, "7")
    page.select_option("select[name=label_value]", "false")
    page.fill("input[name=limit]", "")
    _wait_for_count(page, "8")

    page.check("input[name=mode][value=aids]")
    page.fill("textarea[name=aid_list]", "10000, abc")
    page.fill("input[name=test_ratio]", "0.5")
    page.click("#build button[type=submit]")

    page.wait_for_selector("#error-summary")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'error-summary'")
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    assert "There are 2 problems" in summary.inner_text()
    assert summary.bounding_box()["y"] < page.evaluate("window.innerHeight")  # in view, not above the fold
    page.screenshot(path=screenshot_path("build-form-errors"))
    page.screenshot(path="/tmp/h4form-build-form-errors.png")

    page.click("#error-summary a[href='#id_aid_list']")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'id_aid_list'")


def test_the_final_state_replaces_the_live_one(logged_in_page, groups, registry_file,  # noqa: F811
                                               screenshot_path):
    model = embedding_models_sync()[MODEL_KEY]
    (version,) = make_versions(1, model, status=DatasetVersionStatus.BUILDING, name="x" * 200)
    (task,) = make_tasks(1, status=DatasetTaskStatus.RUNNING, version=version)
    DatasetTask.objects.filter(pk=task.pk).update(
        heartbeat_at=timezone.now(), current_step="generating_embeddings", completed_steps=3, done=0, total=45,
        percentage=15.0, message="Embedding 45 new texts (0 reused)",
    )
    page = logged_in_page(_admin(groups))

    page.goto(f"/datasets/versions/{version.pk}/")
    page.wait_for_selector("[data-polling=true]")
    assert page.locator("[data-testid=cancel-build]").is_visible()
    page.screenshot(path="/tmp/h4form-version-building.png", full_page=True)

    dataset_task_cancel(task.pk)  # as another admin's click would
    page.wait_for_selector("[data-testid=final-message]")
    assert "build cancelled" in page.locator("#messages").inner_text()
    assert page.locator("[data-polling=false]").count() == 1
    assert page.locator("[data-testid=cancel-build]").count() == 0
    assert page.locator("[data-testid=version-status]").inner_text() == "Failed"  # the summary was refreshed too
    page.screenshot(path=screenshot_path("version-final-state"), full_page=True)
    page.screenshot(path="/tmp/h4form-version-final.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing widens the page

    page.goto("/datasets/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path="/tmp/h4form-index-long-name.png")
