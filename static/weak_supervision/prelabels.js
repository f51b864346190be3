/* Pre-label dashboard: the stage chart, the new-function form (try on a sample, save), and the
 * job buttons (apply, label model, LLM, cascade). Writes go through the REST API. */
(function () {
  "use strict";

  const F = window.Flywheel;
  const config = JSON.parse(document.getElementById("ws-config").textContent);
  const root = config.apiRoot;
  const base = "projects/" + config.projectId + "/";
  const $ = (id) => document.getElementById(id);

  function say(text, isError) {
    const box = $("ws-message");
    box.textContent = text;
    box.className = isError ? "error-box" : "notice";
    box.hidden = false;
  }

  // --- stage chart ------------------------------------------------------------------------
  const canvas = $("stage-chart");
  if (canvas && window.Chart) {
    const names = {
      auto_label_model: "Auto (label model)",
      auto_llm: "Auto (LLM)",
      human: "Humans",
      other_machine: "Other machine",
      unsettled: "Not settled",
    };
    const stages = config.stages.filter((s) => s.items > 0);
    new window.Chart(canvas, {
      type: "doughnut",
      data: {
        labels: stages.map((s) => names[s.stage] || s.stage),
        datasets: [{
          data: stages.map((s) => s.items),
          backgroundColor: stages.map((s) => ({
            auto_label_model: "#4c78a8", auto_llm: "#72b7b2", human: "#54a24b",
            other_machine: "#b279a2", unsettled: "#bab0ac",
          })[s.stage]),
        }],
      },
      options: { animation: false, plugins: { legend: { position: "bottom" } } },
    });
  }

  // --- job buttons ------------------------------------------------------------------------
  async function startJob(path, body, what) {
    try {
      const { data } = await F.api(root, "POST", base + path, body || {});
      say(what + " queued as job #" + data.id + ". Reload to see the results when it is done.");
    } catch (err) {
      say(F.errorText(err), true);
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "apply") startJob("labeling-functions/apply/", {}, "Applying functions");
    if (action === "apply-one")
      startJob("labeling-functions/apply/", { lf_ids: [Number(button.dataset.lfId)] }, "Re-run");
    if (action === "llm") startJob("llm/", {}, "LLM pre-labels");
    if (action === "cascade") startJob("cascade/", {}, "Auto-accept");
    if (action === "cascade-unverified" && window.confirm(
      "Auto-accept from sources that too few gold or human-labelled items can check? " +
      "Degenerate sources stay refused; the run can be undone."))
      startJob("cascade/", { accept_unverified: true }, "Auto-accept without checks");
    if (action === "cascade-undo") undoRun(button);
    if (action === "try") trySample();
  });

  // Undo one cascade run: its items get back their labels, status and queue position.
  async function undoRun(button) {
    const id = button.dataset.runId;
    if (!window.confirm("Undo cascade run #" + id + "? Its auto-accepted labels are removed " +
      "and the items go back to the queue as they were; items a human answered since are kept."))
      return;
    button.disabled = true;
    try {
      const { data } = await F.api(root, "POST", base + "cascade/runs/" + id + "/undo/", {});
      const result = data.undo_result || {};
      say("Cascade run #" + id + " undone: " + (result.restored || 0) + " items restored" +
        (result.kept ? ", " + result.kept + " kept (changed since the run)" : "") + ".");
      window.setTimeout(() => window.location.reload(), 800);
    } catch (err) {
      button.disabled = false;
      say(F.errorText(err), true);
    }
  }

  const lmForm = $("lm-form");
  if (lmForm) {
    lmForm.addEventListener("submit", (event) => {
      event.preventDefault();
      startJob("label-model/", { method: $("lm-method").value }, "Label model");
    });
  }

  // --- new function -----------------------------------------------------------------------
  const form = $("lf-form");
  if (!form) return;
  const kind = $("lf-kind");

  function showKindFields() {
    for (const node of form.querySelectorAll("[data-kind]")) {
      node.hidden = !node.dataset.kind.split(" ").includes(kind.value);
    }
  }
  kind.addEventListener("change", showKindFields);
  showKindFields();

  function spec() {
    const k = kind.value;
    const label = $("lf-label").value;
    if (k === "keyword")
      return { kind: k, config: { label: label, keywords: $("lf-keywords").value,
        case_sensitive: $("lf-case").checked, whole_word: $("lf-whole").checked } };
    if (k === "regex")
      return { kind: k, config: { label: label, pattern: $("lf-pattern").value,
        case_sensitive: $("lf-case").checked } };
    if (k === "classifier")
      return { kind: k, config: { label: label || null, threshold: Number($("lf-threshold").value) } };
    return { kind: k, config: { function: $("lf-function").value } };
  }

  function showError(err) {
    const box = $("lf-error");
    box.textContent = F.errorText(err);
    box.hidden = false;
  }

  function pct(x) {
    return x === null || x === undefined ? "—" : (100 * x).toFixed(1) + "%";
  }

  async function trySample() {
    $("lf-error").hidden = true;
    try {
      const { data } = await F.api(root, "POST", base + "labeling-functions/try/", spec());
      const sampled = data.sample_size < data.population
        ? " sampled items (a uniform random sample of all " + data.population + ", seed " + data.seed + ")"
        : " items (all of them)";
      const interval = data.coverage_low === null || data.sample_size >= data.population
        ? ""
        : ", 95% interval " + pct(data.coverage_low) + " to " + pct(data.coverage_high);
      $("lf-sample-summary").textContent =
        "Votes on " + data.votes + " of " + data.sample_size + sampled + ". Estimated coverage " +
        pct(data.coverage) + interval + (data.judged ? "; accuracy " + pct(data.accuracy) + " on " +
        data.judged + " with a human label" : "") + ".";
      // A function that raised or abstained because of a problem says so, not "0% coverage".
      if (data.error) {
        $("lf-error").textContent = data.error;
        $("lf-error").hidden = false;
      }
      const body = $("lf-sample-table").querySelector("tbody");
      body.replaceChildren();
      for (const row of data.rows) {
        const tr = document.createElement("tr");
        for (const value of [row.item_id, row.text, row.vote || "abstain", row.human_label || "—"]) {
          const td = document.createElement("td");
          td.textContent = value;
          tr.appendChild(td);
        }
        if (!row.vote) tr.className = "vote-none";
        body.appendChild(tr);
      }
      $("lf-sample").hidden = false;
    } catch (err) {
      showError(err);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("lf-error").hidden = true;
    try {
      const body = Object.assign({ name: $("lf-name").value }, spec());
      const { data } = await F.api(root, "POST", base + "labeling-functions/", body);
      say("Saved '" + data.name + "' (v" + data.version + "). Apply it to run it on every item.");
      window.setTimeout(() => window.location.reload(), 800);
    } catch (err) {
      showError(err);
    }
  });
})();
