/* The run page's curves: one uPlot chart per <figure class="curve" data-keys="a,b">
 * inside #run-curves, x = step (the epoch). The points come from the run's metrics.json
 * (data-series-url); while the run is queued or running it is read again every 2 s, and
 * reading stops once the answer says the run has finished. No build step: plain script,
 * uPlot vendored (static/vendor/uplot-1.6.32). */
(function () {
  "use strict";

  var POLL_MS = 2000;
  var RETRY_MS = 5000;
  var HEIGHT = 260;
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];
  // Epochs are whole numbers: never a tick at 1.25.
  var STEP_INCREMENTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];

  /* Align the series of `keys` on the union of their steps (uPlot wants one x array);
   * a missing point is null, so a line skips it. */
  function aligned(series, keys) {
    var steps = {};
    keys.forEach(function (key) {
      (series[key] ? series[key].steps : []).forEach(function (step) { steps[step] = true; });
    });
    var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    xs.forEach(function (step, i) { index[step] = i; });
    var data = [xs];
    keys.forEach(function (key) {
      var ys = xs.map(function () { return null; });
      var points = series[key] || { steps: [], values: [] };
      points.steps.forEach(function (step, i) { ys[index[step]] = points.values[i]; });
      data.push(ys);
    });
    return data;
  }

  function chartOptions(keys, width, pointCount) {
    return {
      width: width,
      height: HEIGHT,
      scales: { x: { time: false } },
      legend: { live: true },
      axes: [{ label: "epoch", incrs: STEP_INCREMENTS }, { size: 60 }],
      series: [{ label: "epoch" }].concat(keys.map(function (key, i) {
        return {
          label: key,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: true,
          points: { show: pointCount <= 60 },
          value: function (u, v) { return v == null ? "—" : Number(v.toPrecision(4)); },
        };
      })),
    };
  }

  function Curve(figure) {
    this.figure = figure;
    this.keys = figure.dataset.keys.split(",").filter(Boolean);
    this.plotEl = figure.querySelector(".curve-plot");
    this.emptyEl = figure.querySelector(".curve-empty");
    this.plot = null;
    this.pointCount = 0;
  }

  Curve.prototype.width = function () {
    return Math.max(200, this.plotEl.clientWidth || this.figure.clientWidth);
  };

  Curve.prototype.draw = function (series) {
    var data = aligned(series, this.keys);
    var count = data[0].length;
    this.emptyEl.hidden = count > 0;
    if (count === 0) return;
    // Points markers switch off past 60 epochs: rebuild once when crossing it.
    var rebuild = this.plot && (this.pointCount <= 60) !== (count <= 60);
    this.pointCount = count;
    if (this.plot && !rebuild) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.plot = new uPlot(chartOptions(this.keys, this.width(), count), data, this.plotEl);
    this.figure.dataset.drawn = "true";
  };

  Curve.prototype.resize = function () {
    if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
  };

  function start(section) {
    var url = section.dataset.seriesUrl;
    var curves = Array.prototype.map.call(section.querySelectorAll("figure.curve"), function (figure) {
      return new Curve(figure);
    });
    if (!curves.length || typeof uPlot === "undefined") return;

    function load() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 404) return null; // the run was deleted: nothing more to read
          if (!response.ok) throw new Error("metrics.json answered " + response.status);
          return response.json();
        })
        .then(function (body) {
          if (body === null) {
            section.dataset.polling = "false";
            return;
          }
          curves.forEach(function (curve) { curve.draw(body.series || {}); });
          section.dataset.polling = body.finished ? "false" : "true";
          if (!body.finished) window.setTimeout(load, POLL_MS);
        })
        .catch(function () {
          // A network hiccup or a server error: try again a little later.
          if (section.isConnected) window.setTimeout(load, RETRY_MS);
        });
    }

    if (window.ResizeObserver) {
      new ResizeObserver(function () { curves.forEach(function (curve) { curve.resize(); }); }).observe(section);
    }
    load();
  }

  /* The log tail is swapped in every 2 s: keep its end in view. */
  function scrollLogToEnd() {
    var log = document.querySelector("#run-log .log-tail");
    if (log) log.scrollTop = log.scrollHeight;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("run-curves");
    if (section) start(section);
    scrollLogToEnd();
  });
  document.addEventListener("htmx:afterSettle", scrollLogToEnd);
})();
