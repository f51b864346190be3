/* Flywheel: helpers shared by the page scripts (no framework, no build step).
 * Exposes window.Flywheel = { api, ApiError, csrfToken, errorText, renderReport, reportRows,
 * importOutcome, pollJob, jobProgress, showJobProgress }. */
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || (status ? "HTTP " + status : "network error"));
      this.status = status;
      this.body = body;
    }
  }

  /* fetch() against the REST API with the session cookie and the CSRF header.
   * Resolves {status, data}; data is null for 204. Rejects with ApiError. */
  async function api(root, method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method: method, credentials: "same-origin", headers: headers };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(root + path, init);
    } catch (err) {
      throw new ApiError(0, { detail: "The server could not be reached." });
    }
    if (response.status === 204) return { status: 204, data: null };
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return { status: response.status, data: data };
  }

  /* A readable sentence for an API error body: detail, or DRF's {field: [messages]}. */
  function errorText(err) {
    const body = err && err.body;
    if (body && typeof body.detail === "string") return body.detail;
    if (body && typeof body === "object") {
      const parts = [];
      for (const [field, value] of Object.entries(body)) {
        const text = Array.isArray(value) ? value.join(" ") : String(value);
        parts.push(field === "non_field_errors" ? text : field + ": " + text);
      }
      if (parts.length) return parts.join("; ");
    }
    return err && err.message ? err.message : "Something went wrong.";
  }

  function cell(tag, text) {
    const node = document.createElement(tag);
    node.textContent = text === null || text === undefined || text === "" ? "—" : String(text);
    return node;
  }

  /* Problems listed by an import: result.errors (or .report / .invalid_rows), each with
   * row (or line), field (or column) and reason (or message). */
  function reportRows(result) {
    if (!result || typeof result !== "object") return [];
    const rows = result.errors || result.report || result.invalid_rows || [];
    return Array.isArray(rows) ? rows : [];
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  /* An import's outcome in one sentence (rows read, items created, duplicates merged, rows
   * skipped with their reasons), or "" for results that do not describe rows. */
  function importOutcome(result) {
    if (!result || result.rows_read === undefined) return "";
    let text = plural(result.rows_read, "row") + " read: " + plural(result.items_created, "item") + " created";
    if (result.duplicates_merged) {
      text += ", " + plural(result.duplicates_merged, "duplicate") + " merged (same text as an item or an earlier row)";
    }
    for (const [reason, n] of Object.entries(result.skip_reasons || {})) {
      text += ", " + n + " skipped: " + reason;
    }
    return text + ".";
  }

  /* Build the report into `container`, as DOM text only: why a job failed (its error and
   * validation report: row, field, reason), or what a successful import skipped. */
  function renderReport(container, job) {
    container.replaceChildren();
    const result = job.result || {};
    const details = document.createElement("details");
    const failed = job.status === undefined || job.status === "failed";
    details.className = "job-report" + (failed ? "" : " job-report-ok");
    details.open = true;
    if (failed) {
      details.append(cell("summary", "Why job #" + job.id + " failed"));
    } else {
      // A job that succeeded but skipped rows: say so, never "failed".
      const skipped = result.rows_skipped || result.invalid || result.error_count || 0;
      details.append(cell("summary", "Job #" + job.id + " succeeded" +
        (skipped ? " with " + skipped + " row" + (skipped === 1 ? "" : "s") + " skipped" : "")));
    }
    if (job.error) {
      const pre = cell("pre", job.error.length > 2000 ? job.error.slice(0, 2000) + "…" : job.error);
      pre.className = "job-error";
      details.append(pre);
    }
    const outcome = importOutcome(result);
    if (outcome) {
      const p = cell("p", outcome);
      p.className = "job-outcome";
      details.append(p);
    }
    const problems = reportRows(result);
    if (problems.length) {
      const table = document.createElement("table");
      table.className = "report";
      const total = result.error_count || problems.length;
      let caption = (failed ? "Validation report" : "Rows skipped") +
        " (" + total + " problem" + (total === 1 ? "" : "s");
      if (total > problems.length) caption += ", first " + problems.length + " shown";
      table.append(cell("caption", caption + ")"));
      const head = document.createElement("thead");
      const headRow = document.createElement("tr");
      for (const name of ["Row", "Field", "Reason"]) {
        const th = cell("th", name);
        th.scope = "col";
        headRow.append(th);
      }
      head.append(headRow);
      const tbody = document.createElement("tbody");
      for (const problem of problems) {
        const tr = document.createElement("tr");
        const row = problem.row !== undefined ? problem.row : problem.line;
        tr.append(
          cell("td", row),
          cell("td", problem.field !== undefined ? problem.field : problem.column),
          cell("td", problem.reason !== undefined ? problem.reason : problem.message)
        );
        tbody.append(tr);
      }
      table.append(head, tbody);
      details.append(table);
    }
    container.append(details);
  }

  /* Poll GET /api/jobs/{id}/ until the job finishes; onUpdate(job) after every read.
   * Starts at 500 ms and slows to 3 s so long imports do not hammer the server. */
  function pollJob(root, jobId, onUpdate, onError) {
    let delay = 500;
    let stopped = false;
    async function tick() {
      if (stopped) return;
      try {
        const { data } = await api(root, "GET", "jobs/" + jobId + "/");
        onUpdate(data);
        const finished = ["succeeded", "failed", "cancelled"].includes(data.status);
        if (finished) return;
      } catch (err) {
        if (onError) onError(err);
        if (err.status === 403 || err.status === 404) return;
      }
      delay = Math.min(3000, Math.round(delay * 1.5));
      setTimeout(tick, delay);
    }
    tick();
    return function stop() {
      stopped = true;
    };
  }

  function duration(seconds) {
    if (seconds < 60) return Math.max(1, Math.round(seconds)) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
  }

  /* What a job's progress bar and its text should say, from GET /api/jobs/{id}/:
   * {bar: "hidden" | "indeterminate" | "determinate", max, value, text}. A job that no worker
   * has picked up is waiting, not at 0; one that does not know its total has an indeterminate
   * bar (its message says what it does), never a full one. */
  function jobProgress(job) {
    const finished = ["succeeded", "failed", "cancelled"].includes(job.status);
    const total = job.progress_total;
    if (job.status === "pending") return { bar: "indeterminate", text: "waiting for a worker" };
    if (total === null || total === undefined || total === 0) {
      if (finished) return { bar: "hidden", text: job.progress_done ? job.progress_done + " done" : "" };
      return { bar: "indeterminate", text: job.progress_done ? job.progress_done + " so far" : "" };
    }
    let text = job.progress_done + " / " + total;
    if (!finished && job.percent !== null && job.percent !== undefined) text += " (" + job.percent + "%)";
    if (job.status === "running" && job.items_per_second) {
      const rate = job.items_per_second;
      text += " · " + (rate >= 10 ? Math.round(rate) : rate.toFixed(1)) + " items/s";
      if (job.eta_seconds !== null && job.eta_seconds !== undefined) {
        text += " · about " + duration(job.eta_seconds) + " left";
      }
    }
    return { bar: "determinate", max: total, value: Math.min(job.progress_done, total), text: text };
  }

  /* Apply jobProgress(job) to a <progress> element. */
  function showJobProgress(bar, job) {
    const state = jobProgress(job);
    bar.hidden = state.bar === "hidden";
    if (state.bar === "determinate") {
      bar.max = state.max;
      bar.value = state.value;
    } else {
      bar.removeAttribute("value"); // indeterminate
    }
    return state;
  }

  window.Flywheel = {
    api, ApiError, csrfToken, errorText, renderReport, reportRows, importOutcome, pollJob,
    jobProgress, showJobProgress,
  };
})();
