/* The compare page's overlaid curves: one uPlot chart (faceted mode 2: each run keeps
 * its own x values, so wall-time curves need no alignment) of the chosen metric for
 * every compared run, from series.json (downsampled per run on the server). The chart
 * controls (metric, x axis, colour-by param) belong to #compare-form through their form
 * attribute, so the address (kept up to date here) and the table swaps carry them; a
 * change of one only redraws the chart. Many runs stay readable: thin lines, no points,
 * and past data-run-legend-limit runs the legend maps colours to param values only.
 * No build step: plain script, uPlot vendored (static/vendor/uplot-1.6.32). */
(function () {
  "use strict";

  var HEIGHT = 340;
  var RETRY_MS = 5000;
  // Tableau 10: distinct hues for a param's values (or runs) when it is text.
  var CATEGORY_COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  // Viridis, for a numeric param: low values dark blue, high values yellow.
  var GRADIENT = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var MISSING_COLOR = "#98a2b3";
  var LEGEND_VALUES_SHOWN = 20;
  var NUMBER = /^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$/;
  var STEP_INCREMENTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];

  function gradientColor(t) {
    var scaled = Math.min(1, Math.max(0, t)) * (GRADIENT.length - 1);
    var low = Math.floor(scaled), high = Math.min(GRADIENT.length - 1, low + 1), f = scaled - low;
    var rgb = [0, 1, 2].map(function (i) { return Math.round(GRADIENT[low][i] + (GRADIENT[high][i] - GRADIENT[low][i]) * f); });
    return "rgb(" + rgb.join(",") + ")";
  }

  /* How runs are coloured: by the colour-by param's value (a gradient when every value
   * is a number, a palette otherwise), else one palette colour per run. Returns the
   * colour of each run and the legend entries. */
  function colouring(runs, param) {
    if (!param) {
      return {
        colors: runs.map(function (run, i) { return CATEGORY_COLORS[i % CATEGORY_COLORS.length]; }),
        legend: { kind: "runs" },
      };
    }
    var values = runs.map(function (run) { return run.color_value; });
    var present = values.filter(function (v) { return v !== null && v !== undefined; });
    var numeric = present.length > 0 && present.every(function (v) { return NUMBER.test(v.trim()); });
    if (numeric) {
      var numbers = present.map(Number);
      var min = Math.min.apply(null, numbers), max = Math.max.apply(null, numbers);
      var log = min > 0 && max / min >= 100;
      var scale = function (v) {
        if (max === min) return 0.5;
        return log ? (Math.log(v) - Math.log(min)) / (Math.log(max) - Math.log(min)) : (v - min) / (max - min);
      };
      return {
        colors: values.map(function (v) { return v == null ? MISSING_COLOR : gradientColor(scale(Number(v))); }),
        legend: { kind: "gradient", min: min, max: max, log: log, missing: values.length - present.length },
      };
    }
    var distinct = Array.from(new Set(present)).sort();
    var index = {};
    distinct.forEach(function (v, i) { index[v] = i; });
    return {
      colors: values.map(function (v) { return v == null ? MISSING_COLOR : CATEGORY_COLORS[index[v] % CATEGORY_COLORS.length]; }),
      legend: { kind: "values", values: distinct, missing: values.length - present.length },
    };
  }

  function swatch(color) {
    var span = document.createElement("span");
    span.className = "swatch";
    span.style.background = color;
    return span;
  }

  function legendItem(color, text) {
    var item = document.createElement("span");
    item.className = "compare-legend-item";
    item.appendChild(swatch(color));
    item.appendChild(document.createTextNode(text));
    return item;
  }

  function drawLegend(el, runs, paint, param, limit) {
    el.textContent = "";
    var legend = paint.legend;
    if (runs.length <= limit) {
      // Few runs: each run by name (and its value of the colour-by param).
      runs.forEach(function (run, i) {
        var text = run.name + (param ? " (" + param + " = " + (run.color_value == null ? "—" : run.color_value) + ")" : "");
        el.appendChild(legendItem(paint.colors[i], text));
      });
      return;
    }
    if (legend.kind === "runs") {
      el.appendChild(document.createTextNode(runs.length + " runs, one colour each: choose a param to colour them by."));
      return;
    }
    var title = document.createElement("strong");
    title.textContent = param + ": ";
    el.appendChild(title);
    if (legend.kind === "gradient") {
      el.appendChild(document.createTextNode(String(legend.min) + " "));
      var bar = document.createElement("span");
      bar.className = "gradient-bar";
      bar.style.background = "linear-gradient(to right, " + [0, 0.25, 0.5, 0.75, 1].map(gradientColor).join(", ") + ")";
      el.appendChild(bar);
      el.appendChild(document.createTextNode(" " + String(legend.max) + (legend.log ? " (log scale)" : "")));
    } else {
      legend.values.slice(0, LEGEND_VALUES_SHOWN).forEach(function (value, i) {
        el.appendChild(legendItem(CATEGORY_COLORS[i % CATEGORY_COLORS.length], value));
      });
      if (legend.values.length > LEGEND_VALUES_SHOWN) {
        el.appendChild(document.createTextNode("… and " + (legend.values.length - LEGEND_VALUES_SHOWN) + " more values (colours repeat)"));
      }
    }
    if (legend.missing) el.appendChild(legendItem(MISSING_COLOR, "without " + param + " (" + legend.missing + ")"));
  }

  function chartOptions(body, paint, width) {
    var many = body.runs.length > 50;
    var xLabel = body.x === "wall" ? "seconds since the run's first point" : "epoch";
    return {
      mode: 2,
      width: width,
      height: HEIGHT,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false }, y: { auto: true } },
      axes: [
        body.x === "wall" ? { label: xLabel } : { label: xLabel, incrs: STEP_INCREMENTS },
        { label: body.metric, size: 64 },
      ],
      series: [{}].concat(body.runs.map(function (run, i) {
        return {
          label: run.name,
          stroke: paint.colors[i],
          width: many ? 1 : 1.5,
          alpha: many ? 0.7 : 1,
          points: { show: false },
          paths: uPlot.paths.linear(),
        };
      })),
    };
  }

  function start(section, form) {
    var plotEl = section.querySelector(".compare-plot");
    var noteEl = section.querySelector(".compare-chart-note");
    var legendEl = section.querySelector(".compare-legend");
    var legendLimit = Number(section.dataset.runLegendLimit) || 20;
    var plot = null;
    var loading = 0;

    function value(name) {
      var field = form.elements.namedItem(name);
      if (!field) return "";
      if (field instanceof RadioNodeList) return field.value;
      return field.value;
    }

    function width() {
      return Math.max(300, plotEl.clientWidth || section.clientWidth - 40);
    }

    function load() {
      var started = performance.now();
      var ticket = ++loading;
      var query = new URLSearchParams({ runs: value("runs"), metric: value("metric"), x: value("x") || "step",
                                        color: value("color") });
      section.dataset.loading = "true";
      fetch(section.dataset.seriesUrl + "?" + query.toString(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (answer) {
          if (ticket !== loading) return; // a newer choice was made meanwhile
          section.dataset.loading = "false";
          if (!answer.ok) {
            noteEl.textContent = answer.body.detail || "The curves could not be read.";
            return;
          }
          var body = answer.body;
          if (plot) { plot.destroy(); plot = null; }
          var drawable = body.runs.filter(function (run) { return run.xs.length > 0; });
          body.runs = drawable;
          if (!drawable.length) {
            noteEl.textContent = "No run has points of " + body.metric + ".";
            legendEl.textContent = "";
            section.dataset.drawn = "false";
            return;
          }
          var paint = colouring(drawable, body.color);
          var data = [null].concat(drawable.map(function (run) { return [run.xs, run.ys]; }));
          plot = new uPlot(chartOptions(body, paint, width()), data, plotEl);
          drawLegend(legendEl, drawable, paint, body.color, legendLimit);
          var points = drawable.reduce(function (sum, run) { return sum + run.xs.length; }, 0);
          var cut = drawable.filter(function (run) { return run.total > run.xs.length; }).length;
          noteEl.textContent = body.metric + " of " + drawable.length + " run" + (drawable.length === 1 ? "" : "s") +
            " (x: " + (body.x === "wall" ? "seconds since each run's first point" : "epoch") + ")" +
            ", " + points.toLocaleString() + " points" +
            (cut ? " (" + cut + " curves downsampled to at most " + body.max_points + " points: first, last, and each bucket's lowest and highest)" : "") + ".";
          section.dataset.x = body.x;
          section.dataset.metric = body.metric;
          section.dataset.drawn = "true";
          section.dataset.draws = String(Number(section.dataset.draws || 0) + 1);
          // For measurements: milliseconds from navigation start (first draw) or from the choice.
          section.dataset.drawnAtMs = String(Math.round(performance.now()));
          section.dataset.drawMs = String(Math.round(performance.now() - started));
        })
        .catch(function () {
          if (ticket !== loading) return;
          noteEl.textContent = "The curves could not be read: trying again…";
          if (section.isConnected) window.setTimeout(load, RETRY_MS);
        });
    }

    /* A curve choice: keep the address shareable, then redraw the chart only. */
    function chartChoice(event) {
      if (!event.target.matches("[data-chart-control]")) return;
      var params = new URLSearchParams();
      new FormData(form).forEach(function (v, k) { params.append(k, v); });
      history.replaceState(history.state, "", window.location.pathname + "?" + params.toString());
      load();
    }

    section.addEventListener("change", chartChoice);
    if (window.ResizeObserver) {
      new ResizeObserver(function () { if (plot) plot.setSize({ width: width(), height: HEIGHT }); }).observe(plotEl);
    }
    load();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("compare-curves");
    var form = document.getElementById("compare-form");
    if (!section || !form || typeof uPlot === "undefined") return;
    start(section, form);
  });
})();
