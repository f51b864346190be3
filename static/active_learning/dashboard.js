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

  const curve = data.curve || [];
  new window.Chart(document.getElementById("learning-curve"), {
    type: "line",
    data: {
      datasets: [
        {
          label: "Held-out macro-F1",
          data: curve.map((p) => ({ x: p.labels, y: p.macro_f1, version: p.version, status: p.status })),
          borderColor: "#4c78a8",
          pointBackgroundColor: curve.map((p) => STATUS_COLORS[p.status] || "#4c78a8"),
          pointRadius: 5,
          tension: 0,
          clip: false, // a point at macro-F1 1.0 or at the last label count stays whole
        },
      ],
    },
    options: {
      animation: false,
      parsing: false,
      layout: { padding: { top: 8, right: 12 } },
      scales: {
        x: {
          type: "linear",
          title: { display: true, text: "Final labels" },
          beginAtZero: true,
          grace: "5%",
        },
        y: { min: 0, max: 1, title: { display: true, text: "Macro-F1 (held out)" } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (ctx) =>
              "v" + ctx.raw.version + " (" + ctx.raw.status + "): " + ctx.raw.y.toFixed(3) +
              " at " + ctx.raw.x + " labels",
          },
        },
      },
    },
  });

  const labels = Object.keys(data.distribution || {});
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
