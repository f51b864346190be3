/* Flywheel labeling page.
 *
 * The page holds the item on screen plus up to two prefetched items (POST /next/ with the
 * shown ids excluded), so a submit displays the next item at once and only then talks to the
 * server. Requests go out one at a time, in the order the user acted: a prefetch can never
 * overtake the submit before it, and the server sees writes in the user's order.
 *
 * Keys are never dropped: a key pressed while no item is on screen ("Loading the next item…")
 * or while an undo is answered waits in `state.pending` and is applied, in order, to the items
 * as they appear.
 *
 * The machine's suggestion is shown above the text with its source in words; its label's
 * button is marked "suggested" and pre-selected: Enter (or A) submits it (multi-label: the
 * suggested labels start selected and Enter submits the selection).
 *
 * Keys: label shortcut = choose (single-label: submits; multi-label: toggles), Enter = submit
 * (single-label: the suggested label; multi-label: the selection), A = accept the suggestion
 * shown, S = skip, U or Ctrl+Z = undo, G = guidelines, ? = shortcut list.
 */
(function () {
  "use strict";

  const F = window.Flywheel;
  const config = JSON.parse(document.getElementById("label-config").textContent);
  const root = config.apiRoot;
  const pid = config.projectId;
  const multi = Boolean(config.multiLabel);
  const BUFFER_DEPTH = 2; // prefetched items beyond the one on screen
  const MAX_PENDING = 200; // keys waiting for an item (far more than anyone types ahead)

  const $ = (id) => document.getElementById(id);
  const el = {
    workspace: $("workspace"),
    text: $("item-text"),
    meta: $("item-meta"),
    undoNote: $("undo-note"),
    suggestion: $("suggestion"),
    suggestionText: $("suggestion-text"),
    suggestionSource: $("suggestion-source"),
    suggestionConfidence: $("suggestion-confidence"),
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
    upcoming: [], // items handed back while undoing, shown before the prefetched ones
    buffer: [], // the prefetched payloads, oldest first (at most BUFFER_DEPTH)
    pending: [], // actions from keys pressed while no item could take them, oldest first
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

  // A rounded "100%" would claim certainty no model has: above 99.5% it reads ">99%".
  function percent(p) {
    if (p >= 0.995 && p < 1) return ">99%";
    if (p > 0 && p < 0.005) return "<1%";
    return Math.round(p * 100) + "%";
  }

  // ---- naming items -------------------------------------------------------------------------
  // External ids often carry the answer (a folder, a class prefix): they are shown only when
  // the project's manager switched that on; otherwise items are numbered in this session.
  const shownNumbers = new Map();
  function itemName(item, capital) {
    let name;
    if (config.showExternalId) name = "item " + item.external_id;
    else {
      if (!shownNumbers.has(item.id)) shownNumbers.set(item.id, shownNumbers.size + 1);
      name = "item " + shownNumbers.get(item.id) + " of this session";
    }
    return capital ? name.charAt(0).toUpperCase() + name.slice(1) : name;
  }

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

  function suggestedLabels() {
    return state.suggested ? state.suggested.labels : [];
  }

  function renderSelection() {
    const suggested = suggestedLabels();
    for (const button of el.buttons) {
      const value = button.dataset.value;
      if (multi) button.setAttribute("aria-pressed", String(state.selected.has(value)));
      button.classList.toggle("previous", state.previous.includes(value));
      const isSuggested = suggested.includes(value);
      button.classList.toggle("suggested", isSuggested);
      const tag = button.querySelector(".suggested-tag");
      if (tag) tag.hidden = !isSuggested;
    }
  }

  function matchingSuggestion(labels) {
    const chosen = [...labels].sort().join("\u0000");
    const same = (s) => Array.isArray(s.labels) && [...s.labels].sort().join("\u0000") === chosen;
    if (state.suggested && same(state.suggested)) return state.suggested.id;
    const found = (state.current.suggestions || []).find(same);
    return found ? found.id : null;
  }

  const KIND_WORDS = {
    model: "model",
    zero_shot: "zero-shot",
    label_model: "label model",
    llm: "LLM",
    lf: "labeling function",
    import: "imported",
  };

  /* The suggestion's source in words; the server sends it (`source`), this is the fallback. */
  function sourceWords(s) {
    if (s.source) return s.source;
    const kind = KIND_WORDS[s.source_kind] || s.source_kind;
    if (s.source_kind === "model") return kind + " v" + s.source_version;
    if (s.source_kind === "lf" || s.source_kind === "llm") return kind + " " + s.source_id;
    return kind;
  }

  function renderSuggestion() {
    const s = state.suggested;
    if (!s) {
      el.suggestion.hidden = true;
      el.suggestionText.textContent = "";
      el.suggestionConfidence.textContent = "";
      el.suggestionSource.textContent = "";
      return;
    }
    el.suggestionText.textContent = s.labels.join(", ");
    el.suggestionConfidence.textContent =
      typeof s.confidence === "number" ? percent(s.confidence) + " confident" : "";
    el.suggestionSource.textContent = "from " + sourceWords(s);
    el.suggestion.hidden = false;
  }

  /* Put an item on screen. `payload.previousLabels` (set by undo) are highlighted. */
  function show(payload) {
    state.current = payload;
    state.previous = payload.previousLabels || [];
    const item = payload.item;
    el.text.textContent = item.text; // never innerHTML: item text is untrusted
    el.text.dataset.itemId = String(item.id);
    el.meta.textContent = itemName(item, true);
    el.undoNote.hidden = state.previous.length === 0;
    const suggestions = (payload.suggestions || []).filter((s) => s.labels && s.labels.length);
    state.suggested = suggestions.length ? suggestions[0] : null;
    // Multi-label: the undone answer, else the suggested labels, start selected.
    const preselected = state.previous.length ? state.previous : suggestedLabels();
    state.selected = new Set(multi ? preselected : []);
    renderSuggestion();
    renderSelection();
    setMode("ready");
    renderPending();
    // A long item scrolled the page down: the next one starts at its top.
    if (el.workspace.getBoundingClientRect().top < 0) el.workspace.scrollIntoView({ block: "start" });
    startTimer();
    scheduleDrain();
  }

  // Exposed for tests and styling: "1" when a next item is already here, "empty" at the end;
  // data-buffer-count says how many.
  function renderBuffer() {
    el.workspace.dataset.buffered = state.buffer.length ? "1" : state.queueEmpty ? "empty" : "0";
    el.workspace.dataset.bufferCount = String(state.buffer.length);
  }

  function heldIds() {
    const ids = new Set(state.inFlight);
    if (state.current) ids.add(state.current.item.id);
    for (const p of state.upcoming) ids.add(p.item.id);
    for (const p of state.buffer) ids.add(p.item.id);
    return [...ids];
  }

  function showLoading() {
    el.text.textContent = "Loading the next item…";
    delete el.text.dataset.itemId;
    el.meta.textContent = "";
    el.undoNote.hidden = true;
    state.suggested = null;
    renderSuggestion();
    renderSelection();
    setMode("loading");
    renderPending();
  }

  function advance() {
    state.current = null;
    while (state.upcoming.length || state.buffer.length) {
      const next = state.upcoming.length ? state.upcoming.shift() : state.buffer.shift();
      renderBuffer();
      const duplicate =
        state.upcoming.some((p) => p.item.id === next.item.id) ||
        state.buffer.some((p) => p.item.id === next.item.id);
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
      state.suggested = null;
      renderSuggestion();
      setMode("done");
      dropPendingAtEnd();
      return;
    }
    state.waiting = true;
    showLoading();
    prefetch();
  }

  function prefetch() {
    if (state.buffer.length >= BUFFER_DEPTH || state.prefetching || state.queueEmpty) return;
    state.prefetching = true;
    enqueue(() => call("POST", "projects/" + pid + "/next/", { exclude: heldIds() })).then(
      (res) => {
        state.prefetching = false;
        state.prefetchFailures = 0;
        if (res.status === 204 || !res.data || !res.data.item) state.queueEmpty = true;
        else state.buffer.push(res.data);
        renderBuffer();
        if (state.waiting) {
          state.waiting = false;
          advance(); // shows it and prefetches the one after
        } else prefetch(); // fill the buffer up to BUFFER_DEPTH
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

  // ---- keys that wait for an item -----------------------------------------------------------
  function renderPending() {
    const n = state.pending.length;
    el.workspace.dataset.pending = String(n);
    if (!state.current && el.workspace.dataset.state === "loading") {
      el.text.textContent =
        "Loading the next item…" + (n ? " (" + n + (n === 1 ? " key" : " keys") + " waiting)" : "");
    }
  }

  /* Do `action` now if an item can take it, else keep it for the next item shown. */
  function act(action) {
    const busy = state.pending.length > 0 || state.undoing;
    if (!busy && (state.current || action.type === "undo")) {
      perform(action);
      return;
    }
    if (el.workspace.dataset.state === "done" && !busy) {
      say("Nothing left to label.");
      return;
    }
    if (state.pending.length >= MAX_PENDING) {
      say("Too many keys are waiting for the next item; this one was not kept.", "error");
      return;
    }
    state.pending.push(action);
    renderPending();
    if (state.current && !state.undoing) scheduleDrain();
  }

  function perform(action) {
    switch (action.type) {
      case "choose":
        return choose(action.value);
      case "enter":
        return enter();
      case "accept":
        return acceptSuggestion();
      case "skip":
        return skip();
      case "undo":
        return undo();
      default:
    }
  }

  let drainScheduled = false;
  function scheduleDrain() {
    if (drainScheduled || !state.pending.length) return;
    drainScheduled = true;
    queueMicrotask(drain);
  }

  /* Apply waiting keys, oldest first, while an item is on screen to take them. */
  function drain() {
    drainScheduled = false;
    while (state.pending.length && !state.undoing) {
      const action = state.pending[0];
      if (!state.current && action.type !== "undo") break;
      state.pending.shift();
      perform(action);
    }
    renderPending();
  }

  function dropPendingAtEnd() {
    const n = state.pending.filter((a) => a.type !== "undo").length;
    if (!n || state.undoing) return;
    state.pending = state.pending.filter((a) => a.type === "undo");
    say(n + (n === 1 ? " key was" : " keys were") + " not used: nothing is left to label.");
    renderPending();
    scheduleDrain();
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
        say("Saved “" + labels.join(", ") + "” for " + itemName(item) + ".");
        return res.data;
      },
      (err) => {
        const index = state.history.indexOf(entry);
        if (index >= 0) state.history.splice(index, 1);
        if (err.status === 409) {
          say(
            itemName(item, true) + " was not saved: " + F.errorText(err) + " Moving on.",
            "error"
          );
        } else if (err.status === 0 || err.status >= 500) {
          say(
            itemName(item, true) + " was not saved (" + F.errorText(err) + "). It comes back next.",
            "error"
          );
          state.upcoming.push({ item: item, suggestions: [] });
          if (!state.current && !state.waiting) advance();
        } else {
          say(itemName(item, true) + " was not saved: " + F.errorText(err), "error");
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
    if (!state.current) return;
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

  /* Enter: multi-label submits the selection (the suggested labels unless changed);
   * single-label takes the pre-selected suggestion. */
  function enter() {
    if (!state.current) return;
    if (multi) submitSelected();
    else if (state.suggested) acceptSuggestion();
    else say("There is no suggestion to take with Enter: press a label's key.");
  }

  /* Submit the shown suggestion's labels as this annotator's answer (recorded with its id). */
  function acceptSuggestion() {
    if (!state.current) return;
    if (!state.suggested) {
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
        () => say("Skipped " + itemName(item) + "."),
        (err) => say("Could not skip " + itemName(item) + ": " + F.errorText(err), "error")
      )
      .finally(() => state.inFlight.delete(item.id));
    advance();
  }

  let undoSerial = 0;
  function undo() {
    if (state.undoing) return;
    const entry = state.history.pop();
    if (!entry) {
      say("Nothing to undo.");
      return;
    }
    state.undoing = true;
    const serial = ++undoSerial;
    say("Undoing…");
    enqueue(async () => {
      if (entry.saved) await entry.saved; // rejects if the submit failed: nothing to undo
      return call("POST", "annotations/" + entry.annotationId + "/retract/");
    })
      .then(
        (res) => {
          if (state.current) state.upcoming.unshift(state.current);
          state.waiting = false;
          state.undoing = false; // before show(), which applies keys pressed meanwhile
          say(
            "Undone. " + itemName(res.data.item, true) + " is shown again; your previous label “" +
              entry.labels.join(", ") + "” is highlighted."
          );
          show({ ...res.data, previousLabels: entry.labels });
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
      .finally(() => {
        // A waiting U may have started the next undo already (from show() above).
        if (serial === undoSerial) state.undoing = false;
        if (!state.undoing) scheduleDrain();
      });
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
      if (!event.repeat) act({ type: "undo" });
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (byKey.has(lower)) {
      event.preventDefault();
      if (!event.repeat) act({ type: "choose", value: byKey.get(lower) });
      return;
    }
    const onButton = event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement;
    switch (lower) {
      case "Enter":
        // Enter on another control (Skip, a link…) activates it; on a label button or the
        // page it submits the pre-selected answer.
        if (onButton && !event.target.classList.contains("label-button")) return;
        event.preventDefault();
        if (!event.repeat) act({ type: "enter" });
        return;
      case "a":
        event.preventDefault();
        if (!event.repeat) act({ type: "accept" });
        return;
      case "s":
        event.preventDefault();
        if (!event.repeat) act({ type: "skip" });
        return;
      case "u":
        event.preventDefault();
        if (!event.repeat) act({ type: "undo" });
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
      if (button.getAttribute("aria-disabled") === "true") {
        say(
          el.workspace.dataset.state === "done" ? "Nothing left to label." : "The next item is still loading."
        );
        return;
      }
      choose(button.dataset.value);
    });
  }
  if (el.submit) el.submit.addEventListener("click", submitSelected);
  el.skip.addEventListener("click", skip);
  el.accept.addEventListener("click", acceptSuggestion);
  el.undo.addEventListener("click", () => act({ type: "undo" }));
  el.help.addEventListener("click", openHelp);
  el.checkAgain.addEventListener("click", () => {
    state.queueEmpty = false;
    renderBuffer();
    say("Looking for more items…");
    advance();
  });

  renderBuffer();
  advance();
})();
