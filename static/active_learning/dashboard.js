/* Model dashboard: learning curve and label distribution (Chart.js, vendored), and the
 * manager buttons, which post to the REST API and reload the page. */
(function () {
  "use strict";

  const F = window.Flywheel;
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const root = config.apiRoot;
  const pid = config.projectId;
  const status = document.getElementById("dashboard-status");
  const STATUS_COLORS = {
    active: "#2f7d32",
    retired: "#6b7280",
    rejected: "#b42318",
    candidate: "#4c78a8",
  };

  function say(message, kind) {
    status.textContent = message;
    status.dataset.kind = kind || "info";
  }

  // A chart with nothing to draw shows a sentence instead of empty axes.
  function empty(canvasId) {
    document.getElementById(canvasId).hidden = true;
    document.getElementById(canvasId + "-empty").hidden = false;
  }

  // Vertical bars from a point's lowest to highest fold macro-F1 (cross-validated versions).
  const foldRange = {
    id: "foldRange",
    afterDatasetsDraw(chart) {
      const meta = chart.getDatasetMeta(0);
      const { ctx, scales } = chart;
      ctx.save();
      ctx.lineWidth = 1.5;
      meta.data.forEach((element, i) => {
        const p = chart.data.datasets[0].data[i];
        if (p.min == null || p.max == null) return;
        const x = element.x;
        const top = scales.y.getPixelForValue(p.max);
        const bottom = scales.y.getPixelForValue(p.min);
        ctx.strokeStyle = STATUS_COLORS[p.status] || "#4c78a8";
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.moveTo(x - 4, top);
        ctx.lineTo(x + 4, top);
        ctx.moveTo(x - 4, bottom);
        ctx.lineTo(x + 4, bottom);
        ctx.stroke();
      });
      ctx.restore();
    },
  };

  // Ordered by label count (then version): the line never runs back to fewer labels, which
  // happens when a later version had fewer final labels (raising k clears some).
  const curve = (data.curve || [])
    .slice()
    .sort((a, b) => a.labels - b.labels || a.version - b.version);
  if (!curve.length) {
    empty("learning-curve");
  } else {
    const most = Math.max(...curve.map((p) => p.labels));
    new window.Chart(document.getElementById("learning-curve"), {
      type: "line",
      data: {
        datasets: [
          {
            label: "Macro-F1 (bar: range over the cross-validation folds)",
            data: curve.map((p) => ({
              x: p.labels,
              y: p.macro_f1,
              version: p.version,
              status: p.status,
              evaluation: p.evaluation,
              n: p.n,
              folds: p.folds,
              std: p.std,
              min: p.min,
              max: p.max,
            })),
            borderColor: "#4c78a8",
            pointBackgroundColor: curve.map((p) => STATUS_COLORS[p.status] || "#4c78a8"),
            pointRadius: 5,
            tension: 0,
            clip: false, // a point at macro-F1 1.0 stays whole
          },
        ],
      },
      plugins: [foldRange],
      options: {
        animation: false,
        parsing: false,
        layout: { padding: { top: 10, right: 16, left: 4 } },
        scales: {
          x: {
            type: "linear",
            title: { display: true, text: "Final labels" },
            min: 0,
            // Room after the last point, so it is never cut at the chart's edge.
            max: Math.ceil(most * 1.1 + 1),
            ticks: { precision: 0 },
          },
          y: {
            min: 0,
            max: 1.05,
            title: { display: true, text: "Macro-F1" },
            // Headroom above 1.0 for a perfect point, ticks at 0, 0.2, ..., 1 only.
            afterBuildTicks: (axis) => {
              axis.ticks = [0, 0.2, 0.4, 0.6, 0.8, 1].map((value) => ({ value }));
            },
          },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const p = ctx.raw;
                const how =
                  p.evaluation === "cross_validation"
                    ? p.folds + "-fold cross-validation on " + p.n + " labels, ± " +
                      p.std.toFixed(3) + " (" + p.min.toFixed(3) + "–" + p.max.toFixed(3) + ")"
                    : "on " + p.n + (p.evaluation === "gold" ? " gold" : " held-out") + " items";
                return (
                  "v" + p.version + " (" + p.status + "): " + p.y.toFixed(3) + " at " + p.x +
                  " labels, " + how
                );
              },
            },
          },
        },
      },
    });
  }

  const labels = Object.keys(data.distribution || {});
  if (!labels.some((l) => data.distribution[l] > 0)) {
    empty("label-distribution");
  } else {
    new window.Chart(document.getElementById("label-distribution"), {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          {
            label: "Final labels",
            data: labels.map((l) => data.distribution[l]),
            backgroundColor: labels.map((l) => (data.colors || {})[l] || "#4c78a8"),
          },
        ],
      },
      options: {
        animation: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  function post(path, done) {
    say("Working…");
    F.api(root, "POST", path).then(
      (res) => {
        say(done(res.data));
        setTimeout(() => window.location.reload(), 1200);
      },
      (err) => say(F.errorText(err), "error")
    );
  }

  const retrain = document.getElementById("retrain-now");
  if (retrain) {
    retrain.addEventListener("click", () =>
      post("projects/" + pid + "/train/", (d) =>
        d.started
          ? "Training job #" + d.job.id + " queued."
          : "A training job is running; it will train again when it ends."
      )
    );
  }
  const embed = document.getElementById("embed-now");
  if (embed) {
    embed.addEventListener("click", () =>
      post("projects/" + pid + "/embed/", (d) => "Embedding job #" + d.id + " queued.")
    );
  }
  const rollback = document.getElementById("rollback");
  if (rollback) {
    rollback.addEventListener("click", () =>
      post("projects/" + pid + "/model-versions/rollback/", (d) => "v" + d.number + " is active again.")
    );
  }
  for (const button of document.querySelectorAll("button.promote")) {
    button.addEventListener("click", () =>
      post(
        "projects/" + pid + "/model-versions/" + button.dataset.number + "/promote/",
        (d) => "v" + d.number + " is now active."
      )
    );
  }
})();
