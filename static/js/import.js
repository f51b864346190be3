/* Import page: preview the file's first rows in the browser to offer its column names for the
 * mapping, upload it (POST /api/projects/{pid}/imports/, with upload progress), then follow the
 * background job (GET /api/jobs/{id}/) and show its validation report if it fails. */
(function () {
  "use strict";

  const F = window.Flywheel;
  const config = JSON.parse(document.getElementById("import-config").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("import-form");
  const fileInput = $("import-file");
  const formatSelect = $("import-format");
  const textField = $("text-field");
  const idField = $("id-field");
  const labelField = $("label-field");
  const status = $("import-status");

  const PREVIEW_BYTES = 256 * 1024;
  const PREVIEW_ROWS = 5;
  const WHOLE_JSON_LIMIT = 8 * 1024 * 1024; // parse a JSON array only if it is this small
  const GUESSES = {
    text: ["text", "content", "body", "sentence", "document", "review", "message", "comment"],
    id: ["id", "external_id", "uid", "uuid", "key", "doc_id"],
    label: ["label", "labels", "category", "class", "target", "gold", "sentiment", "tag", "tags"],
  };

  function say(message, kind) {
    status.textContent = message;
    status.dataset.kind = kind || "info";
  }

  function formatOf(file) {
    if (formatSelect.value) return formatSelect.value;
    const name = file.name.toLowerCase();
    if (name.endsWith(".csv") || name.endsWith(".tsv")) return "csv";
    if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return "jsonl";
    if (name.endsWith(".json")) return "json";
    return "";
  }

  // ---- parsing the head of the file ---------------------------------------------------------
  function sniffDelimiter(firstLine) {
    let best = ",";
    let bestCount = 0;
    for (const d of [",", ";", "\t", "|"]) {
      const count = firstLine.split(d).length - 1;
      if (count > bestCount) {
        best = d;
        bestCount = count;
      }
    }
    return best;
  }

  /* RFC 4180 records from `text`; the last record is dropped when the text was cut short. */
  function parseCsv(text, complete) {
    const delimiter = sniffDelimiter(text.split(/\r?\n/, 1)[0] || "");
    const records = [];
    let record = [];
    let field = "";
    let quoted = false;
    let i = 0;
    if (text.charCodeAt(0) === 0xfeff) i = 1; // byte order mark
    for (; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') {
          field += '"';
          i++;
        } else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === delimiter) {
        record.push(field);
        field = "";
      } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        record.push(field);
        records.push(record);
        record = [];
        field = "";
        if (records.length > PREVIEW_ROWS) break;
      } else field += c;
    }
    if (complete && (field !== "" || record.length)) {
      record.push(field);
      records.push(record);
    }
    if (!records.length) return { columns: [], rows: [] };
    const columns = records[0].map((c) => c.trim());
    const rows = records.slice(1, PREVIEW_ROWS + 1).map((values) => {
      const row = {};
      columns.forEach((c, index) => (row[c] = values[index]));
      return row;
    });
    return { columns, rows };
  }

  function objectsToPreview(objects) {
    const columns = [];
    for (const obj of objects) {
      if (obj && typeof obj === "object" && !Array.isArray(obj)) {
        for (const key of Object.keys(obj)) if (!columns.includes(key)) columns.push(key);
      }
    }
    return { columns, rows: objects.slice(0, PREVIEW_ROWS) };
  }

  function parseJsonl(text, complete) {
    const lines = text.split(/\r?\n/);
    if (!complete) lines.pop(); // possibly cut in the middle
    const objects = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        objects.push(JSON.parse(line));
      } catch (err) {
        objects.push({ "(unreadable line)": line.slice(0, 200) });
      }
      if (objects.length >= PREVIEW_ROWS) break;
    }
    return objectsToPreview(objects);
  }

  function parseJson(text) {
    const data = JSON.parse(text);
    const list = Array.isArray(data) ? data : Array.isArray(data.items) ? data.items : [data];
    return objectsToPreview(list.slice(0, PREVIEW_ROWS));
  }

  function cellText(value) {
    if (value === undefined || value === null) return "";
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > 120 ? text.slice(0, 120) + "…" : text;
  }

  function showPreview(preview, note) {
    const section = $("preview");
    const table = $("preview-table");
    $("preview-note").textContent = note || "";
    table.replaceChildren();
    if (!preview || !preview.columns.length) {
      section.hidden = !note;
      return;
    }
    const head = table.createTHead().insertRow();
    for (const column of preview.columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = column;
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of preview.rows) {
      const tr = body.insertRow();
      for (const column of preview.columns) tr.insertCell().textContent = cellText(row[column]);
    }
    section.hidden = false;
  }

  function offerColumns(columns) {
    const list = $("columns");
    list.replaceChildren();
    for (const column of columns) {
      const option = document.createElement("option");
      option.value = column;
      list.append(option);
    }
    const lower = columns.map((c) => c.toLowerCase());
    const guess = (names, suffix) => {
      let index = lower.findIndex((c) => names.includes(c));
      if (index < 0 && suffix) index = lower.findIndex((c) => c.endsWith(suffix));
      return index >= 0 ? columns[index] : "";
    };
    if (!textField.value) textField.value = guess(GUESSES.text);
    if (!idField.value) idField.value = guess(GUESSES.id, "_id");
    if (!labelField.value) labelField.value = guess(GUESSES.label);
  }

  async function preview() {
    const file = fileInput.files[0];
    if (!file) return;
    const format = formatOf(file);
    const complete = file.size <= PREVIEW_BYTES;
    try {
      let result = null;
      let note = "";
      if (format === "csv") result = parseCsv(await file.slice(0, PREVIEW_BYTES).text(), complete);
      else if (format === "jsonl") {
        result = parseJsonl(await file.slice(0, PREVIEW_BYTES).text(), complete);
      } else if (format === "json") {
        if (file.size <= WHOLE_JSON_LIMIT) result = parseJson(await file.text());
        else note = "This JSON file is too large to preview here; type the column names below.";
      } else {
        note = "Choose a format to preview the file.";
      }
      if (result && result.columns.length) {
        note = "Columns found: " + result.columns.join(", ") + ".";
        offerColumns(result.columns);
      }
      showPreview(result, note);
    } catch (err) {
      showPreview(null, "Could not read the start of the file (" + err.message + "). The server will check it.");
    }
  }

  fileInput.addEventListener("change", () => {
    textField.value = "";
    idField.value = "";
    labelField.value = "";
    preview();
  });
  formatSelect.addEventListener("change", preview);

  // ---- upload and follow the job ------------------------------------------------------------
  function upload(formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", config.apiRoot + "projects/" + config.projectId + "/imports/");
      xhr.setRequestHeader("X-CSRFToken", F.csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
        else reject(new F.ApiError(xhr.status, xhr.response));
      });
      xhr.addEventListener("error", () =>
        reject(new F.ApiError(0, { detail: "The upload did not reach the server." }))
      );
      xhr.send(formData);
    });
  }

  /* What became of the rows: read, created, merged as duplicates, skipped (with reasons). */
  function renderResult(container, result) {
    container.replaceChildren();
    if (!result || typeof result !== "object" || result.rows_read === undefined) return;
    const dl = document.createElement("dl");
    dl.className = "stats";
    dl.id = "import-outcome";
    const rows = [
      ["Rows read", result.rows_read],
      ["Items created", result.items_created],
      ["Duplicates merged", result.duplicates_merged],
      ["Rows skipped", result.rows_skipped],
    ];
    if (result.queue_order) rows.push(["Queue order", result.queue_order]);
    for (const [name, value] of rows) {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      div.append(dt, dd);
      dl.append(div);
    }
    container.append(dl);
    const reasons = Object.entries(result.skip_reasons || {});
    if (reasons.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "Skipped: " + reasons.map(([reason, n]) => n + " " + reason).join("; ") + ".";
      container.append(p);
    }
  }

  function renderJob(job) {
    const state = F.showJobProgress($("job-progress"), job);
    $("job-text").textContent = state.text;
    const badge = $("job-status");
    badge.textContent = "Job #" + job.id + ": " + job.status;
    badge.className = "status-badge status-" + job.status;
    // A failure's message opens its report below; do not say it twice.
    $("job-message").textContent = job.status === "failed" ? "" : job.message || "";
    const report = $("job-report");
    if (job.status === "failed") {
      F.renderReport(report, job);
      say("The import failed. The report above lists what to fix.", "error");
    } else if (job.status === "succeeded") {
      renderResult($("job-result"), job.result);
      if (F.reportRows(job.result).length) F.renderReport(report, job);
      else report.replaceChildren();
      const skipped = (job.result && job.result.rows_skipped) || 0;
      say("Import finished" + (skipped ? " with " + skipped + " row" + (skipped === 1 ? "" : "s") + " skipped" : "") + ".");
    } else if (job.status === "pending") {
      say("Uploaded; the import is waiting for a worker.");
    } else {
      say("Importing… " + (job.percent !== null && job.percent !== undefined ? job.percent + "%" : ""));
    }
  }

  let stopPolling = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) {
      say("Choose a file to import.", "error");
      fileInput.focus();
      return;
    }
    const data = new FormData();
    data.append("file", file);
    const format = formatOf(file);
    if (format) data.append("format", format);
    for (const [input, name] of [
      [textField, "text_field"],
      [idField, "id_field"],
      [labelField, "label_field"],
    ]) {
      if (input.value.trim()) data.append(name, input.value.trim());
    }
    data.append("skip_invalid", $("skip-invalid").checked ? "true" : "false");
    data.append("labels_are_final", $("labels-final").checked ? "true" : "false");

    if (stopPolling) stopPolling();
    const submit = $("import-submit");
    submit.disabled = true;
    $("import-job").hidden = false;
    $("job-report").replaceChildren();
    $("job-result").replaceChildren();
    $("job-status").textContent = "";
    $("job-message").textContent = "";
    $("job-text").textContent = "";
    $("job-progress").removeAttribute("value");
    say("Uploading " + file.name + "…");
    try {
      const job = await upload(data, (loaded, total) => {
        $("upload-progress").max = total;
        $("upload-progress").value = loaded;
        $("upload-text").textContent = Math.round((100 * loaded) / total) + "%";
      });
      $("upload-progress").value = $("upload-progress").max;
      $("upload-text").textContent = "100%";
      renderJob(job);
      stopPolling = F.pollJob(config.apiRoot, job.id, renderJob, (err) =>
        say("Could not read the job's progress: " + F.errorText(err), "error")
      );
    } catch (err) {
      say("The import was not started: " + F.errorText(err), "error");
      if (err.body && (err.body.errors || err.body.report)) {
        F.renderReport($("job-report"), { id: "—", error: F.errorText(err), result: err.body });
      }
    } finally {
      submit.disabled = false;
    }
  });
})();
