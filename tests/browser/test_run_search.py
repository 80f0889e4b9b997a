"""The run search page in a browser: a filter typed and searched (htmx swaps the
results), a bad one shown with its caret, a header sort, and "Compare selected" asking
for ``/experiments/compare?runs=<ids>``."""

from urllib.parse import parse_qs, urlparse

from django.contrib.auth import get_user_model

from tests.experiments.factories import ExperimentFactory, make_runs


def test_search_sort_and_compare_selected(logged_in_page, groups, screenshot_path):
    user = get_user_model().objects.create_user("browser-searcher", password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    runs = make_runs(ExperimentFactory(name="browser search"), 12)  # params lr = epochs = 0..11
    page = logged_in_page(user)

    page.goto("/experiments/")
    page.get_by_test_id("search-runs-link").click()
    page.get_by_test_id("filter-input").fill("params.lr >= 9 and metrics.val_f1 > 0")
    page.get_by_test_id("search-button").click()
    page.wait_for_function("document.querySelectorAll('#search-results tr[data-run]').length === 3")
    assert "filter=params.lr" in page.url  # the search is in the address (shareable)

    page.locator('#search-results th a[data-sort="params.lr"]').click()
    page.wait_for_function("document.querySelector('#search-results th.sorted a[data-sort=\"params.lr\"]') !== null")
    names = page.locator("#search-results tr[data-run] .run-name").all_inner_texts()
    assert names == ["bulk-9", "bulk-10", "bulk-11"]
    page.screenshot(path=screenshot_path("run-search"), full_page=True)

    page.get_by_test_id("filter-input").fill("params.lr >> 1")
    page.get_by_test_id("search-button").click()
    page.get_by_test_id("filter-error").wait_for()
    caret = page.locator(".filter-caret").inner_text()
    assert caret.splitlines() == ["params.lr >> 1", " " * 11 + "^"]

    page.get_by_test_id("filter-input").fill("params.lr >= 9")
    page.get_by_test_id("search-button").click()
    page.wait_for_function("document.querySelectorAll('#search-results tr[data-run]').length === 3")
    chosen = [runs[9].pk, runs[11].pk]
    for run_id in chosen:
        page.locator(f'#search-results tr[data-run="{run_id}"] input[name="runs"]').check()
    with page.expect_navigation():
        page.get_by_test_id("compare-selected").click()
    address = urlparse(page.url)
    assert address.path.rstrip("/") == "/experiments/compare"
    assert sorted(int(run_id) for run_id in parse_qs(address.query)["runs"][0].split(",")) == chosen
