/* Flywheel: helpers shared by the page scripts (no framework, no build step).
 * Exposes window.Flywheel = { api, ApiError, csrfToken, errorText, renderReport, pollJob }. */
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

  /* Build the validation report (row, field, reason) into `container`, as DOM text only. */
  function renderReport(container, job) {
    container.replaceChildren();
    const result = job.result || {};
    const details = document.createElement("details");
    details.className = "job-report";
    details.open = true;
    details.append(cell("summary", "Why job #" + job.id + " failed"));
    if (job.error) {
      const pre = cell("pre", job.error.length > 2000 ? job.error.slice(0, 2000) + "…" : job.error);
      pre.className = "job-error";
      details.append(pre);
    }
    const problems = reportRows(result);
    if (problems.length) {
      const table = document.createElement("table");
      table.className = "report";
      const total = result.error_count || problems.length;
      let caption = "Validation report (" + total + " problem" + (total === 1 ? "" : "s");
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

  window.Flywheel = { api, ApiError, csrfToken, errorText, renderReport, pollJob };
})();
