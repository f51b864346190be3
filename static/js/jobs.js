/* Recent-jobs tables: follow every unfinished job (GET /api/jobs/{id}/) and update its row
 * (bar, counts, items/s and time left, message); when one fails, or succeeds with skipped
 * rows, show its report under it. */
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
    for (const button of table.querySelectorAll("button.job-restart")) {
      button.addEventListener("click", async () => {
        button.disabled = true;
        const row = table.querySelector('tr[data-job-id="' + button.dataset.jobId + '"]');
        const message = row.querySelector('[data-field="message"]');
        try {
          await F.api(root, "POST", "jobs/" + button.dataset.jobId + "/restart/");
          window.location.reload();
        } catch (err) {
          message.textContent = (err.body && err.body.detail) || "The job could not be restarted.";
          button.disabled = false;
        }
      });
    }
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
        const state = F.showJobProgress(bar, job);
        row.querySelector('[data-field="counts"]').textContent = state.text;
        row.querySelector('[data-field="message"]').textContent = job.message || "";
        const restart = row.querySelector("button.job-restart");
        if (restart) restart.hidden = !(job.status === "failed" || job.stuck);
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
        } else if (finished && reportRow && F.reportRows(job.result).length) {
          // A job that succeeded with skipped rows: its report, titled as a success.
          F.renderReport(reportRow.querySelector("td"), job);
          reportRow.hidden = false;
        }
      });
    }
  }
})();
