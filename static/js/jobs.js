/* Recent-jobs tables: follow every unfinished job (GET /api/jobs/{id}/) and update its row;
 * when one fails, show its validation report under it. */
(function () {
  "use strict";

  const F = window.Flywheel;
  const LABELS = {
    pending: "Pending",
    running: "Running",
    succeeded: "Succeeded",
    failed: "Failed",
    cancelled: "Cancelled",
  };

  for (const table of document.querySelectorAll("table.jobs")) {
    const root = table.dataset.apiRoot;
    for (const row of table.querySelectorAll("tr[data-job-id]")) {
      if (row.dataset.finished === "1") continue;
      const id = row.dataset.jobId;
      const bar = row.querySelector("progress");
      const reportRow = table.querySelector('tr[data-report-for="' + id + '"]');
      F.pollJob(root, id, (job) => {
        const finished = ["succeeded", "failed", "cancelled"].includes(job.status);
        row.className = "job job-" + job.status;
        const badge = row.querySelector('[data-field="status"]');
        badge.textContent = LABELS[job.status] || job.status;
        badge.className = "job-status status-" + job.status;
        if (job.progress_total) {
          bar.max = job.progress_total;
          bar.value = job.progress_done;
        } else if (finished) {
          bar.max = 100;
          bar.value = job.status === "succeeded" ? 100 : 0;
        }
        row.querySelector('[data-field="counts"]').textContent =
          job.progress_done + (job.progress_total ? " / " + job.progress_total : "");
        row.querySelector('[data-field="message"]').textContent = job.message || "";
        const started = row.querySelector('[data-field="started"]');
        if (job.started_at && started && !started.querySelector("time")) {
          const time = document.createElement("time");
          time.dateTime = job.started_at;
          time.textContent = new Date(job.started_at).toLocaleString();
          started.replaceChildren(time);
        }
        if (finished) row.dataset.finished = "1";
        if (job.status === "failed" && reportRow) {
          F.renderReport(reportRow.querySelector("td"), job);
          reportRow.hidden = false;
        }
      });
    }
  }
})();
