/* Flywheel labeling page.
 *
 * The page always holds the item on screen plus one prefetched item (POST /next/ with the
 * shown ids excluded), so a submit displays the next item at once and only then talks to the
 * server. Requests go out one at a time, in the order the user acted: a prefetch can never
 * overtake the submit before it, and the server sees writes in the user's order.
 *
 * Keys: label shortcut = choose (single-label: submits; multi-label: toggles), Enter = submit
 * (multi-label), A = accept the suggestion shown, S = skip, U or Ctrl+Z = undo, G = guidelines,
 * ? = shortcut list.
 */
(function () {
  "use strict";

  const F = window.Flywheel;
  const config = JSON.parse(document.getElementById("label-config").textContent);
  const root = config.apiRoot;
  const pid = config.projectId;
  const multi = Boolean(config.multiLabel);

  const $ = (id) => document.getElementById(id);
  const el = {
    workspace: $("workspace"),
    text: $("item-text"),
    meta: $("item-meta"),
    undoNote: $("undo-note"),
    suggestion: $("suggestion"),
    suggestionText: $("suggestion-text"),
    suggestionSource: $("suggestion-source"),
    accept: $("accept-suggestion"),
    buttons: Array.from(document.querySelectorAll("#label-buttons .label-button")),
    submit: $("submit-button"),
    skip: $("skip-button"),
    undo: $("undo-button"),
    help: $("help-button"),
    dialog: $("shortcuts"),
    guidelines: $("guidelines"),
    allDone: $("all-done"),
    checkAgain: $("check-again"),
    status: $("status"),
    count: $("my-count"),
    bar: $("progress-project"),
    barText: $("progress-project-text"),
  };

  const state = {
    current: null, // payload of /next/ or /retract/: {assignment, item, suggestions}
    upcoming: [], // items handed back while undoing, shown before the prefetched one
    buffer: null, // the prefetched payload
    queueEmpty: false, // the last prefetch got 204
    prefetching: false,
    waiting: false, // the user is waiting for an item because the buffer ran dry
    prefetchFailures: 0,
    selected: new Set(),
    previous: [], // labels of an undone annotation, highlighted
    inFlight: new Set(), // item ids with a submit or skip not yet answered
    undoing: false,
    // Oldest first; the last entry is undone first. Each: {itemId, labels, annotationId, saved}
    history: (config.history || []).map((h) => ({
      itemId: h.itemId,
      labels: h.labels,
      annotationId: h.annotationId,
      saved: null,
    })),
    suggested: null, // the suggestion shown for the current item, if any
    shownAt: 0,
    spentMs: 0,
  };

  // ---- requests, one at a time --------------------------------------------------------------
  let chain = Promise.resolve();
  function enqueue(task) {
    const result = chain.then(task);
    chain = result.catch(() => undefined);
    return result;
  }
  const call = (method, path, body) => F.api(root, method, path, body);

  // ---- status, counters ---------------------------------------------------------------------
  let statusTimer = null;
  function say(message, kind) {
    clearTimeout(statusTimer);
    el.status.textContent = message;
    el.status.dataset.kind = kind || "info";
    if (kind !== "error") statusTimer = setTimeout(() => (el.status.textContent = ""), 6000);
  }

  function renderProgress(p) {
    el.count.textContent = String(p.mine);
    el.bar.max = Math.max(1, p.total);
    el.bar.value = p.done;
    el.bar.textContent = p.done + " / " + p.total;
    el.barText.textContent = p.done + " / " + p.total;
  }

  let progressQueued = false;
  let progressTrailing = null;
  function refreshProgress() {
    // Project-wide counts may be cached server-side for a few seconds: read again once idle.
    clearTimeout(progressTrailing);
    progressTrailing = setTimeout(readProgress, 3000);
    readProgress();
  }
  function readProgress() {
    if (progressQueued) return; // a read already waits behind every write made so far
    progressQueued = true;
    enqueue(() => {
      progressQueued = false;
      return call("GET", "projects/" + pid + "/progress/");
    }).then(
      (res) => renderProgress(res.data),
      () => undefined
    );
  }

  // ---- time spent (only while the page is visible) ------------------------------------------
  function startTimer() {
    state.spentMs = 0;
    state.shownAt = performance.now();
  }
  function elapsedMs() {
    const running = document.hidden ? 0 : performance.now() - state.shownAt;
    return Math.max(0, Math.round(state.spentMs + running));
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) state.spentMs += performance.now() - state.shownAt;
    else state.shownAt = performance.now();
  });

  // ---- what is on screen --------------------------------------------------------------------
  function setMode(mode) {
    // mode: "ready" | "loading" | "done"
    el.workspace.dataset.state = mode;
    el.allDone.hidden = mode !== "done";
    for (const button of el.buttons) button.setAttribute("aria-disabled", String(mode !== "ready"));
    if (el.submit) el.submit.setAttribute("aria-disabled", String(mode !== "ready"));
    el.skip.setAttribute("aria-disabled", String(mode !== "ready"));
  }

  function renderSelection() {
    for (const button of el.buttons) {
      const value = button.dataset.value;
      if (multi) button.setAttribute("aria-pressed", String(state.selected.has(value)));
      button.classList.toggle("previous", state.previous.includes(value));
    }
  }

  function matchingSuggestion(labels) {
    const chosen = [...labels].sort().join("\u0000");
    const found = (state.current.suggestions || []).find(
      (s) => Array.isArray(s.labels) && [...s.labels].sort().join("\u0000") === chosen
    );
    return found ? found.id : null;
  }

  /* Put an item on screen. `payload.previousLabels` (set by undo) are highlighted. */
  function show(payload) {
    state.current = payload;
    state.previous = payload.previousLabels || [];
    state.selected = new Set(multi ? state.previous : []);
    const item = payload.item;
    el.text.textContent = item.text; // never innerHTML: item text is untrusted
    el.text.dataset.itemId = String(item.id);
    el.meta.textContent = "Item " + item.external_id;
    el.undoNote.hidden = state.previous.length === 0;
    const suggestions = (payload.suggestions || []).filter((s) => s.labels && s.labels.length);
    state.suggested = suggestions.length ? suggestions[0] : null;
    if (state.suggested) {
      const s = state.suggested;
      const confidence =
        typeof s.confidence === "number" ? " (" + Math.round(s.confidence * 100) + "%)" : "";
      const kinds = {
        model: "model",
        label_model: "label model",
        llm: "LLM",
        lf: "labeling function",
        import: "import",
      };
      const source = (kinds[s.source_kind] || s.source_kind) + " " + s.source_id + " v" + s.source_version;
      el.suggestionText.textContent = s.labels.join(", ") + confidence;
      el.suggestionSource.textContent = "Suggestion from " + source + ": ";
      el.suggestion.hidden = false;
    } else {
      el.suggestion.hidden = true;
      el.suggestionText.textContent = "";
      el.suggestionSource.textContent = "";
    }
    renderSelection();
    setMode("ready");
    startTimer();
  }

  // Exposed for tests and styling: "1" when the next item is already here, "empty" at the end.
  function setBuffer(payload) {
    state.buffer = payload;
    el.workspace.dataset.buffered = payload ? "1" : state.queueEmpty ? "empty" : "0";
  }

  function heldIds() {
    const ids = new Set(state.inFlight);
    if (state.current) ids.add(state.current.item.id);
    for (const p of state.upcoming) ids.add(p.item.id);
    if (state.buffer) ids.add(state.buffer.item.id);
    return [...ids];
  }

  function advance() {
    state.current = null;
    while (state.upcoming.length || state.buffer) {
      const next = state.upcoming.length ? state.upcoming.shift() : state.buffer;
      if (next === state.buffer) setBuffer(null);
      const duplicate = state.upcoming.some((p) => p.item.id === next.item.id);
      if (!duplicate) {
        show(next);
        prefetch();
        return;
      }
    }
    if (state.queueEmpty && !state.prefetching) {
      el.text.textContent = "";
      delete el.text.dataset.itemId;
      el.meta.textContent = "";
      el.undoNote.hidden = true;
      el.suggestion.hidden = true;
      setMode("done");
      return;
    }
    state.waiting = true;
    el.text.textContent = "Loading the next item…";
    delete el.text.dataset.itemId;
    el.meta.textContent = "";
    el.undoNote.hidden = true;
    el.suggestion.hidden = true;
    setMode("loading");
    prefetch();
  }

  function prefetch() {
    if (state.buffer || state.prefetching || state.queueEmpty) return;
    state.prefetching = true;
    enqueue(() => call("POST", "projects/" + pid + "/next/", { exclude: heldIds() })).then(
      (res) => {
        state.prefetching = false;
        state.prefetchFailures = 0;
        if (res.status === 204 || !res.data || !res.data.item) {
          state.queueEmpty = true;
          setBuffer(null);
        } else setBuffer(res.data);
        if (state.waiting) {
          state.waiting = false;
          advance();
        }
      },
      (err) => {
        state.prefetching = false;
        state.prefetchFailures += 1;
        say("Could not load the next item: " + F.errorText(err) + " Retrying…", "error");
        if (err.status !== 403 && err.status !== 404) {
          setTimeout(prefetch, Math.min(15000, 1000 * 2 ** state.prefetchFailures));
        }
      }
    );
  }

  // ---- actions ------------------------------------------------------------------------------
  function submit(labels) {
    if (!state.current) return;
    if (!labels.length) {
      say("Choose at least one label, then press Enter.", "error");
      return;
    }
    const item = state.current.item;
    const body = {
      labels: labels,
      time_spent_ms: elapsedMs(),
      suggestion_id: matchingSuggestion(labels),
    };
    const entry = { itemId: item.id, labels: labels, annotationId: null, saved: null };
    state.inFlight.add(item.id);
    entry.saved = enqueue(() =>
      call("POST", "projects/" + pid + "/items/" + item.id + "/submit/", body)
    ).then(
      (res) => {
        entry.annotationId = res.data.id;
        say("Saved “" + labels.join(", ") + "” for item " + item.external_id + ".");
        return res.data;
      },
      (err) => {
        const index = state.history.indexOf(entry);
        if (index >= 0) state.history.splice(index, 1);
        if (err.status === 409) {
          say(
            "Item " + item.external_id + " was not saved: " + F.errorText(err) + " Moving on.",
            "error"
          );
        } else if (err.status === 0 || err.status >= 500) {
          say(
            "Item " + item.external_id + " was not saved (" + F.errorText(err) + "). It comes back next.",
            "error"
          );
          state.upcoming.push({ item: item, suggestions: [] });
          if (!state.current && !state.waiting) advance();
        } else {
          say("Item " + item.external_id + " was not saved: " + F.errorText(err), "error");
        }
        throw err;
      }
    );
    entry.saved
      .catch(() => undefined)
      .finally(() => {
        state.inFlight.delete(item.id);
        refreshProgress();
      });
    state.history.push(entry);
    advance();
  }

  function choose(value) {
    if (!state.current) {
      say(
        el.workspace.dataset.state === "done"
          ? "Nothing left to label."
          : "The next item is still loading."
      );
      return;
    }
    if (!multi) {
      submit([value]);
      return;
    }
    if (state.selected.has(value)) state.selected.delete(value);
    else state.selected.add(value);
    renderSelection();
  }

  function submitSelected() {
    if (!state.current) return;
    const order = el.buttons.map((b) => b.dataset.value);
    submit(order.filter((v) => state.selected.has(v)));
  }

  /* Submit the shown suggestion's labels as this annotator's answer (recorded with its id). */
  function acceptSuggestion() {
    if (!state.current || !state.suggested) {
      say("There is no suggestion to accept.");
      return;
    }
    submit(state.suggested.labels.slice());
  }

  function skip() {
    if (!state.current) return;
    const item = state.current.item;
    state.inFlight.add(item.id);
    enqueue(() => call("POST", "projects/" + pid + "/items/" + item.id + "/skip/"))
      .then(
        () => say("Skipped item " + item.external_id + "."),
        (err) => say("Could not skip item " + item.external_id + ": " + F.errorText(err), "error")
      )
      .finally(() => state.inFlight.delete(item.id));
    advance();
  }

  function undo() {
    if (state.undoing) return;
    const entry = state.history.pop();
    if (!entry) {
      say("Nothing to undo.");
      return;
    }
    state.undoing = true;
    say("Undoing…");
    enqueue(async () => {
      if (entry.saved) await entry.saved; // rejects if the submit failed: nothing to undo
      return call("POST", "annotations/" + entry.annotationId + "/retract/");
    })
      .then(
        (res) => {
          if (state.current) state.upcoming.unshift(state.current);
          state.waiting = false;
          show({ ...res.data, previousLabels: entry.labels });
          say(
            "Undone. Item " + res.data.item.external_id + " is shown again; your previous label “" +
              entry.labels.join(", ") + "” is highlighted."
          );
          refreshProgress();
        },
        (err) => {
          if (entry.annotationId === null) say("That answer was never saved, so there is nothing to undo.", "error");
          else if (err.status === 0 || err.status >= 500) {
            state.history.push(entry);
            say("Could not undo: " + F.errorText(err), "error");
          } else say("Could not undo: " + F.errorText(err), "error");
        }
      )
      .finally(() => (state.undoing = false));
  }

  function toggleGuidelines() {
    if (el.guidelines) el.guidelines.open = !el.guidelines.open;
    else say("This project has no guidelines.");
  }

  function openHelp() {
    if (!el.dialog.open) el.dialog.showModal();
  }

  // ---- keyboard -----------------------------------------------------------------------------
  const byKey = new Map();
  for (const button of el.buttons) {
    const key = button.dataset.shortcut;
    if (key) byKey.set(key.toLowerCase(), button.dataset.value);
  }

  function isTyping(target) {
    return (
      target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
    );
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || isTyping(event.target)) return;
    if (el.dialog.open) return; // the dialog handles Esc and its own buttons
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && !event.altKey && key.toLowerCase() === "z") {
      event.preventDefault();
      if (!event.repeat) undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (byKey.has(lower)) {
      event.preventDefault();
      if (!event.repeat) choose(byKey.get(lower));
      return;
    }
    const onButton = event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement;
    switch (lower) {
      case "Enter":
        if (!multi) return;
        if (onButton && !event.target.classList.contains("label-button")) return; // activate it
        event.preventDefault();
        if (!event.repeat) submitSelected();
        return;
      case "a":
        event.preventDefault();
        if (!event.repeat) acceptSuggestion();
        return;
      case "s":
        event.preventDefault();
        if (!event.repeat) skip();
        return;
      case "u":
        event.preventDefault();
        if (!event.repeat) undo();
        return;
      case "g":
        event.preventDefault();
        toggleGuidelines();
        return;
      case "?":
        event.preventDefault();
        openHelp();
        return;
      default:
    }
  });

  // ---- buttons ------------------------------------------------------------------------------
  for (const button of el.buttons) {
    button.addEventListener("click", () => {
      if (button.getAttribute("aria-disabled") === "true") return;
      choose(button.dataset.value);
    });
  }
  if (el.submit) el.submit.addEventListener("click", submitSelected);
  el.skip.addEventListener("click", skip);
  el.accept.addEventListener("click", acceptSuggestion);
  el.undo.addEventListener("click", undo);
  el.help.addEventListener("click", openHelp);
  el.checkAgain.addEventListener("click", () => {
    state.queueEmpty = false;
    setBuffer(null);
    say("Looking for more items…");
    advance();
  });

  advance();
})();
