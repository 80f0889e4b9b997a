"""Comparing runs from the browser: tick runs in an experiment's runs table, open the
compare page, toggle "only differences", switch the curves' x axis and see the chart
redrawn; and a 1,000-run compare page drawn whole (its time printed, never asserted)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from django.contrib.auth import get_user_model

from tests.experiments.factories import ExperimentFactory
from tests.experiments.test_compare import EPOCHS, run_with, runs_with_curves

# True once the compare chart's canvas holds a non-transparent pixel: uPlot has drawn.
CANVAS_DRAWN = """() => {
  const canvas = document.querySelector('#compare-curves[data-drawn=true] canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) if (pixels[alpha]) return true;
  return false;
}"""


def _viewer(groups):
    user = get_user_model().objects.create_user("browser-comparer", password="pw-for-tests-1")
    user.groups.add(groups["labelers"])
    return user


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def test_select_runs_compare_toggle_differences_and_switch_the_x_axis(logged_in_page, groups, screenshot_path):
    experiment = ExperimentFactory(name="browser compare", metric_key="val_loss", metric_direction="min")
    runs = [
        run_with(experiment, f"lr {lr}", {"lr": lr, "epochs": "6", "optimizer": optimizer},
                 {"val_loss": [1.0 / (epoch * speed) for epoch in range(1, 7)],
                  "val_f1": [min(0.95, 0.4 + 0.08 * epoch * speed) for epoch in range(1, 7)]},
                 seconds_per_epoch=seconds)
        for lr, optimizer, speed, seconds in (("0.1", "adam", 1.0, 3.0), ("0.01", "adam", 1.5, 5.0),
                                              ("0.001", "sgd", 0.8, 2.0), ("0.5", "sgd", 2.0, 4.0))
    ]
    chosen = runs[:3]
    page = logged_in_page(_viewer(groups))

    page.goto(f"/experiments/{experiment.pk}/")
    for run in chosen:
        page.check(f"#runs tr[data-run='{run.pk}'] input[data-testid=select-run]")
    page.click("[data-testid=compare-selected]")

    page.wait_for_url("**/experiments/compare?*")
    assert sorted(_query(page)["runs"]) == sorted(str(run.pk) for run in chosen)
    page.wait_for_function(CANVAS_DRAWN)
    chart = page.locator("#compare-curves")
    assert chart.get_attribute("data-x") == "step" and chart.get_attribute("data-metric") == "val_loss"
    assert page.locator("[data-testid=compare-legend] .compare-legend-item").count() == 3

    # Only differences is on: lr and optimizer differ, epochs (6 for all) is hidden.
    params = page.locator("[data-testid=params-table]")
    assert page.locator("[data-testid=only-differences]").is_checked()
    assert params.locator("th[data-param]").all_inner_texts() == ["lr", "optimizer"]
    # The table lists newest first, so run "lr 0.001" (sgd) comes first: the two other
    # runs differ from it in lr and optimizer.
    assert params.locator("td.differs").count() == 4
    page.uncheck("[data-testid=only-differences]")
    page.wait_for_selector("[data-testid=params-table] th[data-param=epochs]")
    assert _query(page)["diff"][-1] == "0"
    page.check("[data-testid=only-differences]")
    page.wait_for_selector("[data-testid=params-table] th[data-param=epochs]", state="detached")

    # The x axis: wall time redraws the chart (and only the chart) and is kept in the address.
    draws = int(chart.get_attribute("data-draws"))
    page.check("input[name=x][value=wall]")
    page.wait_for_function(
        f"() => document.querySelector('#compare-curves').dataset.draws === '{draws + 1}'")
    assert chart.get_attribute("data-x") == "wall"
    page.wait_for_function(CANVAS_DRAWN)
    assert "x: seconds since each run's first point" in page.locator("[data-testid=chart-note]").inner_text()
    assert _query(page)["x"] == ["wall"]

    # Colour by a param: the legend maps its values to colours.
    page.select_option("[data-testid=color-by]", "optimizer")
    page.wait_for_function(
        f"() => document.querySelector('#compare-curves').dataset.draws === '{draws + 2}'")
    assert "optimizer = sgd" in page.locator("[data-testid=compare-legend]").inner_text()

    # The shared address reopens the same choices.
    page.goto(page.url)
    page.wait_for_function(CANVAS_DRAWN)
    assert page.locator("input[name=x][value=wall]").is_checked()
    assert page.locator("[data-testid=color-by]").input_value() == "optimizer"
    assert page.locator("[data-testid=scatter] circle").count() == 3
    page.screenshot(path=screenshot_path("compare-runs"), full_page=True)


def test_a_compare_page_of_a_thousand_runs_draws_every_curve(logged_in_page, groups, screenshot_path):
    runs = runs_with_curves(1000)
    page = logged_in_page(_viewer(groups))
    ids = ",".join(str(run.pk) for run in runs)

    page.goto(f"/experiments/compare?runs={ids}&color=lr&metric=val_loss", timeout=60_000)
    page.wait_for_function(CANVAS_DRAWN, timeout=60_000)
    note = page.locator("[data-testid=chart-note]").inner_text()
    assert f"val_loss of 1000 runs (x: epoch), {1000 * EPOCHS:,} points" in note
    assert page.locator("[data-testid=params-table] tbody tr").count() == 1000
    # Past the per-run limit the legend maps colours to lr values, not to 1,000 runs.
    assert page.locator("[data-testid=compare-legend]").inner_text().startswith("lr:")
    drawn_ms = page.evaluate("() => Number(document.querySelector('#compare-curves').dataset.drawnAtMs)")
    print(f"\n1,000-run compare page: curves drawn {drawn_ms} ms after navigation start")
    page.screenshot(path=screenshot_path("compare-1000-runs"))
