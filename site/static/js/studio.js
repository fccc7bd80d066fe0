/* Daydream studio: the generate panel, the session timeline and live updates.
 *
 * Layout of this file:
 *   1. config, DOM helpers, formatting
 *   2. API client (fetch + CSRF + error shape) and the balance
 *   3. the generate form: sliders, cost, size presets, seed, drawer, submit
 *   4. the timeline: a store of tasks, one render function per card, and applyEvent(),
 *      the one place where live events change tasks
 *   5. Socket.IO wiring and start-up
 *
 * Contract: /api/v1 (see API.md). No inline scripts: configuration comes from the JSON
 * block #studio-config rendered by the server.
 */
(function () {
  "use strict";

  /* ------------------------------------------------------------------ 1. basics */

  var configEl = document.getElementById("studio-config");
  var config = {};
  try {
    config = JSON.parse(configEl ? configEl.textContent : "{}") || {};
  } catch (err) {
    config = {};
  }
  var limits = config.limits || { max_side: 768, max_pixels: 768 * 768, max_samples: 4 };
  var schedulerLabels = config.schedulers || {};
  var modelNames = {};
  (config.models || []).forEach(function (m) { modelNames[m.id] = m.name; });

  var FINAL_STATES = { done: true, failed: true, canceled: true };
  var STATE_RANK = { queued: 0, running: 1, done: 2, failed: 2, canceled: 2 };
  var STATE_LABELS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", canceled: "Canceled" };
  var TASK_LIST_URL = "/api/v1/tasks?session=current&limit=50";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function byId(id) { return document.getElementById(id); }

  /** Create an element: el("p", {class: "x", text: "hi"}, [children]). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key === "dataset") Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function formatEta(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds) || seconds < 0) return "";
    if (seconds >= 120) return "about " + Math.round(seconds / 60) + " min left";
    return "about " + Math.max(1, Math.round(seconds)) + " s left";
  }

  function formatDuration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "";
    if (seconds >= 90) {
      var m = Math.floor(seconds / 60);
      return m + " min " + Math.round(seconds - m * 60) + " s";
    }
    return (seconds < 10 ? seconds.toFixed(1) : String(Math.round(seconds))) + " s";
  }

  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var dateTimeFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  var fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

  function parseTime(iso) {
    var t = Date.parse(iso || "");
    return isNaN(t) ? null : t;
  }

  function formatCreated(iso) {
    var t = parseTime(iso);
    if (t === null) return { short: "", full: "" };
    var d = new Date(t);
    var today = new Date();
    var sameDay = d.toDateString() === today.toDateString();
    return { short: (sameDay ? timeFormat : dateTimeFormat).format(d), full: fullFormat.format(d) };
  }

  function announce(text) {
    var region = byId("sr-status");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function shorten(text, n) {
    text = String(text || "");
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  /* ------------------------------------------------------------------ 2. API */

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  /**
   * Call the JSON API. Resolves (never rejects) to {ok, status, data, error, retryAfter}.
   * error is the API's {code, message, field?} or a synthesized one.
   */
  function api(method, path, body, headers) {
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    Object.keys(headers || {}).forEach(function (k) { init.headers[k] = headers[k]; });

    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (err) { data = null; }
        }
        var result = {
          ok: response.ok,
          status: response.status,
          data: data,
          error: null,
          retryAfter: response.headers.get("Retry-After"),
        };
        if (!response.ok) {
          result.error = (data && data.error) || {
            code: "http_" + response.status,
            message: response.status === 401
              ? "You are signed out."
              : "The server answered " + response.status + ". Please try again.",
          };
        }
        return result;
      });
    }, function () {
      return {
        ok: false, status: 0, data: null, retryAfter: null,
        error: { code: "network", message: "Could not reach the server. Check your connection and try again." },
      };
    });
  }

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* Balance: #balance in the header holds "N tokens" and data-tokens="N". */
  var balanceEl = byId("balance");

  function currentTokens() {
    var n = balanceEl ? parseInt(balanceEl.dataset.tokens, 10) : NaN;
    if (isNaN(n) && typeof config.tokens === "number") n = config.tokens;
    return isNaN(n) ? null : n;
  }

  function setBalance(tokens) {
    if (typeof tokens !== "number" || !balanceEl) return;
    var previous = currentTokens();
    balanceEl.dataset.tokens = String(tokens);
    balanceEl.textContent = plural(tokens, "token", "tokens");
    if (previous !== null && previous !== tokens && balanceEl.parentElement) {
      var pill = balanceEl.parentElement;
      pill.classList.remove("is-bumped");
      void pill.offsetWidth; // restart the animation
      pill.classList.add("is-bumped");
    }
    updateCost();
  }

  var balanceTimer = null;
  function refreshBalance() {
    window.clearTimeout(balanceTimer);
    balanceTimer = window.setTimeout(function () {
      api("GET", "/api/v1/me").then(function (res) {
        if (res.ok && res.data && typeof res.data.tokens === "number") setBalance(res.data.tokens);
      });
    }, 120);
  }

  /* ------------------------------------------------------------------ 3. the form */

  var form = byId("generate-form");
  var panel = byId("studio-panel");
  var backdrop = byId("panel-backdrop");
  var panelToggle = byId("panel-toggle");
  var panelClose = byId("panel-close");
  var generateButton = byId("generate");
  var formError = byId("form-error");
  var promptInput = byId("prompt");
  var seedInput = byId("seed");
  var seedClear = byId("seed-clear");
  var timelineSection = byId("timeline");

  var NUMBER_FIELDS = ["width", "height", "steps", "guidance", "samples"];
  var FIELD_NAMES = ["prompt", "negative_prompt", "width", "height", "steps", "guidance", "samples", "seed", "scheduler", "model"];

  function numberValue(id) {
    var input = byId(id);
    if (!input) return null;
    var raw = String(input.value).trim();
    if (raw === "") return null;
    var n = Number(raw);
    return isFinite(n) ? n : null;
  }

  /* Range <-> number pairs: the number input (#steps) is the field, #steps-range follows it. */
  function paintRange(range) {
    var min = Number(range.min) || 0;
    var max = Number(range.max) || 100;
    var value = Number(range.value);
    var pct = max > min ? ((value - min) / (max - min)) * 100 : 0;
    range.style.setProperty("--fill", Math.min(100, Math.max(0, pct)) + "%");
  }

  function syncRangeFromNumber(id) {
    var range = byId(id + "-range");
    var n = numberValue(id);
    if (!range) return;
    if (n !== null) range.value = String(n);
    paintRange(range);
  }

  function setField(id, value) {
    var input = byId(id);
    if (!input) return;
    if (input.tagName === "SELECT") {
      var exists = $all("option", input).some(function (o) { return o.value === String(value); });
      if (exists) input.value = String(value);
    } else {
      input.value = value === null || value === undefined ? "" : String(value);
    }
    if (NUMBER_FIELDS.indexOf(id) !== -1) syncRangeFromNumber(id);
    clearFieldError(id);
  }

  $all("input.range[data-sync]").forEach(function (range) {
    var target = byId(range.dataset.sync);
    paintRange(range);
    range.addEventListener("input", function () {
      if (target) target.value = range.value;
      paintRange(range);
      clearFieldError(range.dataset.sync);
      onFormChanged();
    });
  });

  NUMBER_FIELDS.forEach(function (id) {
    var input = byId(id);
    if (!input) return;
    input.addEventListener("input", function () {
      syncRangeFromNumber(id);
      onFormChanged();
    });
  });

  function onFormChanged() {
    updateCost();
    updatePresetState();
    updateSeedControls();
  }

  /* Cost: samples × ceil(steps × width × height / (50 × 512 × 512)), as API.md says. */
  function computeCost() {
    var samples = numberValue("samples");
    var steps = numberValue("steps");
    var width = numberValue("width");
    var height = numberValue("height");
    if ([samples, steps, width, height].some(function (v) { return v === null || v <= 0; })) return null;
    return samples * Math.ceil((steps * width * height) / (50 * 512 * 512));
  }

  function updateCost() {
    var costEl = byId("cost");
    if (!costEl) return;
    var cost = computeCost();
    var tokens = currentTokens();
    var line = byId("cost-line");
    costEl.textContent = cost === null ? "–" : String(cost);
    costEl.dataset.cost = cost === null ? "" : String(cost);
    var unit = byId("cost-unit");
    if (unit) unit.textContent = cost === 1 ? "token" : "tokens";
    var balanceHint = byId("cost-balance");
    var short = cost !== null && tokens !== null && cost > tokens;
    if (balanceHint) {
      balanceHint.textContent = tokens === null ? "" : (short ? "You have only " : "You have ") + plural(tokens, "token", "tokens");
    }
    if (line) line.classList.toggle("is-short", short);
  }

  /* Size presets keep the area near 512×512 and respect the limits. */
  var BASE_AREA = 512 * 512;

  function sizeForRatio(a, b) {
    var w = Math.sqrt((BASE_AREA * a) / b);
    var h = w * (b / a);
    var snap = function (v) { return Math.max(64, Math.min(limits.max_side, Math.round(v / 8) * 8)); };
    w = snap(w);
    h = snap(h);
    while (w * h > limits.max_pixels && w > 64 && h > 64) {
      w = snap(w * 0.95);
      h = snap(h * 0.95);
    }
    return [w, h];
  }

  function updatePresetState() {
    var w = numberValue("width");
    var h = numberValue("height");
    $all(".size-presets [data-size]").forEach(function (chip) {
      var parts = chip.dataset.size.split(":").map(Number);
      var active = w && h && Math.abs(w / h - parts[0] / parts[1]) < 0.03;
      chip.classList.toggle("is-active", !!active);
      chip.setAttribute("aria-pressed", active ? "true" : "false");
    });
  }

  $all(".size-presets [data-size]").forEach(function (chip) {
    chip.addEventListener("click", function () {
      var parts = chip.dataset.size.split(":").map(Number);
      var size = sizeForRatio(parts[0], parts[1]);
      setField("width", size[0]);
      setField("height", size[1]);
      onFormChanged();
    });
  });

  var swapButton = byId("size-swap");
  if (swapButton) {
    swapButton.addEventListener("click", function () {
      var w = byId("width").value;
      setField("width", byId("height").value);
      setField("height", w);
      onFormChanged();
    });
  }

  /* Seed: empty means random; the die picks one now so it can be kept. */
  function updateSeedControls() {
    if (seedClear) seedClear.hidden = !seedInput || seedInput.value === "";
  }

  var seedRandom = byId("seed-random");
  if (seedRandom) {
    seedRandom.addEventListener("click", function () {
      var buf = new Uint32Array(1);
      window.crypto.getRandomValues(buf);
      setField("seed", buf[0]);
      seedRandom.classList.remove("is-rolling");
      void seedRandom.offsetWidth;
      seedRandom.classList.add("is-rolling");
      updateSeedControls();
    });
  }
  if (seedClear) {
    seedClear.addEventListener("click", function () {
      setField("seed", "");
      updateSeedControls();
      if (seedInput) seedInput.focus();
    });
  }
  if (seedInput) seedInput.addEventListener("input", updateSeedControls);

  /* Prompt character counter and Ctrl/Cmd+Enter to generate. */
  function updatePromptCount() {
    var counter = byId("prompt-count");
    if (!counter || !promptInput) return;
    var n = promptInput.value.length;
    counter.textContent = n + " / 1000";
    counter.classList.toggle("is-over", n > 1000);
  }
  if (promptInput) promptInput.addEventListener("input", updatePromptCount);

  $all("#generate-form textarea").forEach(function (area) {
    area.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submitForm();
      }
    });
  });

  /* Field errors: <p id="{field}-error"> under each field. */
  function showFieldError(field, message) {
    var box = byId(field + "-error");
    var input = byId(field);
    if (!box || !input) return false;
    box.textContent = message;
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
    return true;
  }

  function clearFieldError(field) {
    var box = byId(field + "-error");
    var input = byId(field);
    if (box) { box.hidden = true; box.textContent = ""; }
    if (input) input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    FIELD_NAMES.forEach(clearFieldError);
    hideFormError();
  }

  FIELD_NAMES.forEach(function (field) {
    var input = byId(field);
    if (!input) return;
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", function () { clearFieldError(field); });
  });

  function showFormError(message, linkHref, linkText) {
    if (!formError) return;
    formError.textContent = message;
    if (linkHref) {
      formError.appendChild(document.createTextNode(" "));
      formError.appendChild(el("a", { href: linkHref, text: linkText }));
    }
    formError.hidden = false;
  }

  function hideFormError() {
    if (!formError) return;
    formError.hidden = true;
    formError.textContent = "";
  }

  /* The drawer (narrow screens only): the panel slides over the timeline. */
  var narrow = window.matchMedia("(max-width: 900px)");

  function isDrawer() { return narrow.matches; }

  function panelIsOpen() { return panel && panel.classList.contains("is-open"); }

  function openPanel() {
    if (!panel || !isDrawer()) {
      if (promptInput) promptInput.focus();
      return;
    }
    panel.classList.add("is-open");
    if (backdrop) backdrop.hidden = false;
    if (panelToggle) panelToggle.setAttribute("aria-expanded", "true");
    document.body.classList.add("drawer-open");
    if (timelineSection) timelineSection.inert = true;
    window.setTimeout(function () { if (promptInput) promptInput.focus({ preventScroll: true }); }, 60);
  }

  function closePanel(returnFocus) {
    if (!panel) return;
    var wasOpen = panelIsOpen();
    panel.classList.remove("is-open");
    if (backdrop) backdrop.hidden = true;
    if (panelToggle) panelToggle.setAttribute("aria-expanded", "false");
    document.body.classList.remove("drawer-open");
    if (timelineSection) timelineSection.inert = false;
    if (wasOpen && returnFocus && panelToggle) panelToggle.focus();
  }

  if (panelToggle) panelToggle.addEventListener("click", function () { panelIsOpen() ? closePanel(true) : openPanel(); });
  if (panelClose) panelClose.addEventListener("click", function () { closePanel(true); });
  if (backdrop) backdrop.addEventListener("click", function () { closePanel(true); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && panelIsOpen()) closePanel(true);
  });
  var onNarrowChange = function () { if (!isDrawer()) closePanel(false); };
  if (narrow.addEventListener) narrow.addEventListener("change", onNarrowChange);
  else if (narrow.addListener) narrow.addListener(onNarrowChange);

  /* Submit. */
  var submitting = false;

  function readForm() {
    var payload = {
      prompt: promptInput ? promptInput.value : "",
      negative_prompt: byId("negative_prompt") ? byId("negative_prompt").value : "",
      steps: numberValue("steps"),
      guidance: numberValue("guidance"),
      width: numberValue("width"),
      height: numberValue("height"),
      samples: numberValue("samples"),
      seed: seedInput && seedInput.value.trim() !== "" ? numberValue("seed") : null,
    };
    ["scheduler", "model"].forEach(function (id) {
      var select = byId(id);
      if (select && select.value) payload[id] = select.value;
    });
    return payload;
  }

  function setSubmitting(on) {
    submitting = on;
    if (!generateButton) return;
    generateButton.disabled = on;
    generateButton.setAttribute("aria-busy", on ? "true" : "false");
    var label = $(".btn__label", generateButton);
    if (label) label.textContent = on ? "Sending…" : "Generate";
  }

  function showSubmitError(res) {
    var error = res.error || {};
    var message = error.message || "Something went wrong. Please try again.";
    if (res.status === 422 || res.status === 400) {
      if (error.field && showFieldError(error.field, message)) {
        var input = byId(error.field);
        if (input) input.focus();
        return;
      }
      showFormError(message);
    } else if (res.status === 402) {
      showFormError(message || "You do not have enough tokens for this. Lower the steps, size or number of images.");
    } else if (res.status === 429) {
      var wait = parseInt(res.retryAfter, 10);
      showFormError(message + (wait > 0 ? " Try again in about " + wait + " s." : ""));
    } else if (res.status === 401) {
      showFormError("You were signed out.", "/login?next=/studio", "Sign in again");
    } else {
      showFormError(message);
    }
  }

  function submitForm() {
    if (submitting) return;
    clearErrors();
    var payload = readForm();
    setSubmitting(true);
    api("POST", "/api/v1/tasks", payload, { "Idempotency-Key": newIdempotencyKey() }).then(function (res) {
      setSubmitting(false);
      if (res.ok && res.data && res.data.id) {
        upsertTask(res.data, { top: true });
        closePanel(false);
        window.scrollTo({ top: 0, behavior: "smooth" });
        announce("Queued: " + shorten(res.data.prompt, 80));
        refreshBalance();
        return;
      }
      showSubmitError(res);
      if (res.status === 402) refreshBalance();
    });
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitForm();
    });
  }

  /** Put a task's settings back into the form ("Reuse settings"). */
  function reuseSettings(task) {
    setField("prompt", task.prompt || "");
    setField("negative_prompt", task.negative_prompt || "");
    ["width", "height", "steps", "guidance", "samples"].forEach(function (id) {
      if (task[id] !== undefined && task[id] !== null) setField(id, task[id]);
    });
    setField("seed", task.seed === null || task.seed === undefined ? "" : task.seed);
    if (task.scheduler) setField("scheduler", task.scheduler);
    if (task.model) setField("model", task.model);
    updatePromptCount();
    onFormChanged();
    if (isDrawer()) openPanel();
    else if (promptInput) promptInput.focus();
  }

  /* ------------------------------------------------------------------ 4. the timeline */

  var taskList = byId("task-list");
  var emptyState = byId("timeline-empty");
  var loadingNote = byId("timeline-loading");
  var timelineAlert = byId("timeline-alert");

  /** id -> task (API "Task" shape, plus _preview from live events). */
  var tasks = new Map();
  /** id -> partial task from events that arrived before we knew the task. */
  var earlyEvents = new Map();
  var fetching = new Set();

  function rank(state) { return STATE_RANK[state] === undefined ? -1 : STATE_RANK[state]; }

  /**
   * Merge what we know with what just arrived. States only move forward, so a stale
   * answer (a list fetched before an event) never moves a card backwards.
   */
  function mergeTask(current, incoming) {
    if (!current) return Object.assign({}, incoming);
    var merged;
    if (incoming.state && rank(incoming.state) < rank(current.state)) {
      merged = Object.assign({}, incoming, current); // keep ours, fill in what we lacked
    } else {
      merged = Object.assign({}, current, incoming);
      if (incoming.state === "running" && current.state === "running" &&
          current.progress && incoming.progress &&
          (incoming.progress.step || 0) < (current.progress.step || 0)) {
        merged.progress = current.progress; // an older snapshot of the same run
        merged.eta_s = current.eta_s;
      }
    }
    if (FINAL_STATES[merged.state]) delete merged._preview;
    return merged;
  }

  /** Store a task (full or partial, but known) and render its card. */
  function upsertTask(incoming, options) {
    if (!incoming || !incoming.id) return null;
    var before = tasks.get(incoming.id);
    var task = mergeTask(before, incoming);
    tasks.set(task.id, task);
    renderTask(task, options || {});
    if (before && before.state !== task.state && FINAL_STATES[task.state]) {
      announce(STATE_LABELS[task.state] + ": " + shorten(task.prompt, 80));
    }
    return task;
  }

  var fetchAgain = new Set();

  /** GET one task and merge it in; a second call while one is in flight runs once more after it. */
  function fetchTask(id) {
    if (fetching.has(id)) {
      fetchAgain.add(id);
      return;
    }
    fetching.add(id);
    api("GET", "/api/v1/tasks/" + encodeURIComponent(id)).then(function (res) {
      fetching.delete(id);
      if (!res.ok || !res.data) {
        earlyEvents.delete(id);
        fetchAgain.delete(id);
        return;
      }
      upsertTask(res.data);
      var early = earlyEvents.get(id);
      earlyEvents.delete(id);
      if (early) upsertTask(early);
      if (fetchAgain.has(id)) {
        fetchAgain.delete(id);
        fetchTask(id);
      }
    });
  }

  /** Turn a Socket.IO `task` payload into a partial task. */
  function eventToPatch(ev) {
    var patch = { id: ev.id };
    if (ev.state) patch.state = ev.state;
    if (typeof ev.step === "number" || typeof ev.total === "number") {
      patch.progress = { step: ev.step || 0, total: ev.total || 0 };
    }
    if ("eta_s" in ev) patch.eta_s = ev.eta_s;
    if ("position" in ev) patch.position = ev.position;
    if (typeof ev.preview === "string" && ev.preview.indexOf("data:image/") === 0) patch._preview = ev.preview;
    if (Array.isArray(ev.images)) patch.images = ev.images;
    if (ev.error) patch.error = ev.error;
    if (typeof ev.refunded === "boolean") patch.refunded = ev.refunded;
    return patch;
  }

  /** The one place where live events change tasks. */
  function applyEvent(ev) {
    if (!ev || !ev.id) return;
    var patch = eventToPatch(ev);
    if (!tasks.has(ev.id)) {
      var early = earlyEvents.get(ev.id);
      earlyEvents.set(ev.id, early ? mergeTask(early, patch) : patch);
      fetchTask(ev.id);
      return;
    }
    var before = tasks.get(ev.id);
    upsertTask(patch);
    if (FINAL_STATES[ev.state] && !FINAL_STATES[before.state]) {
      // Final: fetch the whole task (images, duration, refund) and the new balance.
      fetchTask(ev.id);
      refreshBalance();
      refreshQueue();
    }
  }

  function loadTimelineOnce() {
    return api("GET", TASK_LIST_URL).then(function (res) {
      if (!res.ok || !res.data || !Array.isArray(res.data.items)) {
        if (res.status === 401) {
          showTimelineAlert("You were signed out. ", "/login?next=/studio", "Sign in again");
        } else {
          showTimelineAlert("Could not load your tasks: " + ((res.error && res.error.message) || "unknown error"));
        }
        return;
      }
      hideTimelineAlert();
      // Oldest first, so that each card lands above the previous one.
      res.data.items.slice().reverse().forEach(function (task) { upsertTask(task); });
    });
  }

  /* Loads coalesce: a request made while one is running runs once more afterwards. */
  var loading = null;
  var loadAgain = false;
  var loadedOnce = false;
  function loadTimeline() {
    if (loading) {
      loadAgain = true;
      return loading;
    }
    loading = loadTimelineOnce().then(function () {
      loadedOnce = true;
      loading = null;
      updateEmptyState();
      if (loadAgain) {
        loadAgain = false;
        return loadTimeline();
      }
    });
    updateEmptyState();
    return loading;
  }

  function showTimelineAlert(message, href, linkText) {
    if (!timelineAlert) return;
    timelineAlert.textContent = message;
    if (href) timelineAlert.appendChild(el("a", { href: href, text: linkText }));
    timelineAlert.hidden = false;
  }

  function hideTimelineAlert() {
    if (timelineAlert) timelineAlert.hidden = true;
  }

  function updateEmptyState() {
    var hasCards = !!(taskList && taskList.querySelector(".task"));
    if (emptyState) emptyState.hidden = hasCards;
    if (loadingNote) loadingNote.hidden = loadedOnce || hasCards;
  }

  /* ---------- card rendering ---------- */

  function cardFor(id) {
    if (!taskList) return null;
    var cards = taskList.children;
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].dataset.taskId === id) return cards[i];
    }
    return null;
  }

  /** Insert a new card, newest first by created_at. */
  function placeCard(card, task, top) {
    var created = parseTime(task.created_at);
    if (top || created === null) {
      taskList.insertBefore(card, taskList.firstChild);
      return;
    }
    var cards = taskList.children;
    for (var i = 0; i < cards.length; i++) {
      var other = tasks.get(cards[i].dataset.taskId);
      var otherCreated = other ? parseTime(other.created_at) : null;
      if (otherCreated !== null && otherCreated < created) {
        taskList.insertBefore(card, cards[i]);
        return;
      }
    }
    taskList.appendChild(card);
  }

  /** Build the skeleton of a card; updateCard() fills it in. */
  function createCard(task) {
    var promptId = "task-" + task.id + "-prompt";
    var card = el("article", {
      class: "task",
      "aria-labelledby": promptId,
      dataset: { taskId: task.id, state: task.state || "queued" },
    }, [
      el("header", { class: "task__head" }, [
        el("span", { class: "task-state" }, [
          el("span", { class: "task-spinner", "aria-hidden": "true", hidden: true }),
          el("span", { class: "task-state__label" }),
        ]),
        el("time", { class: "task__when task-created" }),
        el("div", { class: "task__actions" }, [
          el("button", { type: "button", class: "btn btn--tiny btn--danger task-cancel", hidden: true, text: "Cancel" }),
          el("button", { type: "button", class: "btn btn--tiny btn--ghost task-reuse", text: "Reuse settings",
                         "aria-label": "Reuse these settings in the panel" }),
          el("a", { class: "btn btn--tiny btn--ghost task-archive", hidden: true, download: "", text: "Download ZIP" }),
        ]),
      ]),
      el("p", { class: "task__prompt task-prompt", id: promptId }),
      el("p", { class: "task__negative task-negative", hidden: true }),
      el("ul", { class: "task__meta", "aria-label": "Settings" }, [
        el("li", { class: "task-size" }),
        el("li", { class: "task-steps" }),
        el("li", { class: "task-guidance" }),
        el("li", { class: "task-scheduler" }),
        el("li", { class: "task-model", hidden: true }),
        el("li", { class: "task-seed" }),
        el("li", { class: "task-cost", hidden: true }),
      ]),
      el("div", { class: "task__status" }, [
        el("p", { class: "task__status-text" }, [
          el("span", { class: "task-position", hidden: true }),
          el("span", { class: "task-step", hidden: true }),
          el("span", { class: "task-eta", hidden: true }),
        ]),
        el("progress", { class: "task-progress", max: "1", value: "0", "aria-label": "Progress" }),
      ]),
      el("div", { class: "task-images" }),
      el("p", { class: "task-error", role: "alert", hidden: true }),
      el("p", { class: "task-refund", hidden: true }),
      el("p", { class: "task-message", hidden: true }),
      el("div", { class: "task__footer" }, [
        el("span", { class: "task-duration", hidden: true }),
      ]),
    ]);

    $(".task-cancel", card).addEventListener("click", function () { cancelTask(card.dataset.taskId); });
    $(".task-reuse", card).addEventListener("click", function () {
      var current = tasks.get(card.dataset.taskId);
      if (current) reuseSettings(current);
    });
    return card;
  }

  function setText(node, text) {
    if (!node) return;
    var value = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
    node.hidden = value === "";
  }

  /** Render one task into its card (creating it when new). Safe to call often. */
  function renderTask(task, options) {
    if (!taskList) return;
    var card = cardFor(task.id);
    if (!card) {
      card = createCard(task);
      placeCard(card, task, options && options.top);
    }
    updateCard(card, task);
    updateEmptyState();
  }

  function updateCard(card, task) {
    var state = task.state || "queued";
    var finished = !!FINAL_STATES[state];
    card.dataset.state = state;

    // Header: state badge, created time, actions.
    setText($(".task-state__label", card), STATE_LABELS[state] || state);
    $(".task-spinner", card).hidden = state !== "running";
    var when = $(".task-created", card);
    var created = formatCreated(task.created_at);
    if (task.created_at) when.setAttribute("datetime", task.created_at);
    when.title = created.full;
    setText(when, created.short);

    $(".task-cancel", card).hidden = state !== "queued";
    var images = Array.isArray(task.images) ? task.images : [];
    var archive = $(".task-archive", card);
    archive.hidden = !(state === "done" && images.length > 0);
    archive.href = "/api/v1/tasks/" + encodeURIComponent(task.id) + "/archive";
    archive.setAttribute("aria-label", "Download this task's images as a ZIP archive");

    // Prompt and settings.
    setText($(".task-prompt", card), task.prompt || "");
    var negative = $(".task-negative", card);
    if (task.negative_prompt) {
      negative.replaceChildren(el("b", { text: "Avoid: " }), document.createTextNode(task.negative_prompt));
      negative.hidden = false;
    } else {
      negative.hidden = true;
    }
    var size = task.width && task.height ? task.width + " × " + task.height : "";
    if (size && task.samples > 1) size += " · " + task.samples + " images";
    setText($(".task-size", card), size);
    setText($(".task-steps", card), typeof task.steps === "number" ? plural(task.steps, "step", "steps") : "");
    setText($(".task-guidance", card), typeof task.guidance === "number" ? "Guidance " + task.guidance : "");
    setText($(".task-scheduler", card), task.scheduler ? (schedulerLabels[task.scheduler] || task.scheduler) : "");
    var modelCount = (config.models || []).length;
    setText($(".task-model", card), task.model && modelCount > 1 ? (modelNames[task.model] || task.model) : "");
    setText($(".task-seed", card), task.seed === null || task.seed === undefined ? "Seed random" : "Seed " + task.seed);
    setText($(".task-cost", card), typeof task.cost === "number" && task.cost > 0 ? plural(task.cost, "token", "tokens") : "");

    // Status: queue position, steps, time left, progress bar.
    var status = $(".task__status", card);
    status.hidden = finished;
    if (!finished) {
      var progress = task.progress || {};
      var total = progress.total || task.steps || 1;
      var step = Math.min(progress.step || 0, total);
      var bar = $(".task-progress", card);
      bar.max = total;
      bar.value = state === "running" ? step : 0;
      bar.setAttribute("aria-valuetext", state === "running" ? "step " + step + " of " + total : "waiting");

      var position = task.position;
      setText($(".task-position", card), state === "queued"
        ? (typeof position === "number" ? "Position " + position + " in the queue" : "Waiting in the queue")
        : "");
      setText($(".task-step", card), state === "running" ? "step " + step + " / " + total : "");
      setText($(".task-eta", card), formatEta(task.eta_s));
    }

    renderImages(card, task, images);

    // Failure, refund, duration.
    setText($(".task-error", card), state === "failed" ? (task.error || "This task failed.") : "");
    var refund = "";
    if (task.refunded && (state === "failed" || state === "canceled")) {
      refund = typeof task.cost === "number" && task.cost > 0
        ? (task.cost === 1 ? "Your 1 token was refunded." : "Your " + task.cost + " tokens were refunded.")
        : "Your tokens were refunded.";
    }
    setText($(".task-refund", card), refund);
    var duration = finished && typeof task.duration_s === "number"
      ? (state === "done" ? "Took " : "Ran for ") + formatDuration(task.duration_s)
      : "";
    setText($(".task-duration", card), duration);
  }

  /** Images when done; while waiting, one placeholder per sample sized like the result. */
  function renderImages(card, task, images) {
    var grid = $(".task-images", card);
    var state = task.state;
    var signature;
    if (state === "done" && images.length) {
      signature = "img:" + images.map(function (img) { return img.id; }).join(",");
    } else if (!FINAL_STATES[state]) {
      signature = "ph:" + (task.samples || 1) + ":" + task.width + "x" + task.height;
    } else {
      signature = "none";
    }

    if (grid.dataset.signature !== signature) {
      grid.dataset.signature = signature;
      grid.replaceChildren();
      if (signature.indexOf("img:") === 0) {
        images.forEach(function (image, i) {
          var w = image.width || task.width;
          var h = image.height || task.height;
          var label = "Image " + (i + 1) + " of " + images.length + ": " + shorten(task.prompt, 120);
          grid.appendChild(el("a", {
            href: image.url, target: "_blank", rel: "noopener",
            "aria-label": "Open image " + (i + 1) + " full size in a new tab",
          }, [
            el("img", {
              class: "task-image", src: image.thumbnail_url, width: w, height: h,
              loading: "lazy", decoding: "async", alt: label,
            }),
          ]));
        });
        grid.dataset.count = String(images.length);
      } else if (signature.indexOf("ph:") === 0) {
        var count = Math.max(1, task.samples || 1);
        for (var i = 0; i < count; i++) {
          var ph = el("div", { class: "task-placeholder", role: "img", "aria-label": "Image " + (i + 1) + " is being made" });
          if (task.width && task.height) ph.style.aspectRatio = task.width + " / " + task.height;
          grid.appendChild(ph);
        }
        grid.dataset.count = String(count);
      } else {
        grid.dataset.count = "0";
      }
      grid.hidden = signature === "none";
    }

    // Live preview of the current step goes into the first placeholder.
    var first = grid.querySelector(".task-placeholder");
    if (first) {
      var preview = first.querySelector(".task-preview");
      if (task._preview) {
        if (!preview) {
          preview = el("img", { class: "task-preview", alt: "" });
          first.appendChild(preview);
        }
        if (preview.getAttribute("src") !== task._preview) preview.src = task._preview;
      } else if (preview) {
        preview.remove();
      }
    }
  }

  function showCardMessage(id, message) {
    var card = cardFor(id);
    if (!card) return;
    setText($(".task-message", card), message);
  }

  function cancelTask(id) {
    var card = cardFor(id);
    var button = card ? $(".task-cancel", card) : null;
    if (button) button.disabled = true;
    api("POST", "/api/v1/tasks/" + encodeURIComponent(id) + "/cancel").then(function (res) {
      if (button) button.disabled = false;
      if (res.ok && res.data && res.data.id) {
        showCardMessage(id, "");
        upsertTask(res.data);
      } else {
        showCardMessage(id, (res.error && res.error.message) || "Could not cancel this task.");
        fetchTask(id);
      }
      refreshBalance();
    });
  }

  /* ------------------------------------------------------------------ 5. live updates */

  var connectionEl = byId("connection");
  var queueStatusEl = byId("queue-status");
  var socketConnected = false;
  var workers = null;
  var lastQueue = null;

  function setConnection(state, text) {
    if (!connectionEl) return;
    connectionEl.dataset.state = state;
    setText($(".connection__text", connectionEl), text);
    connectionEl.hidden = false;
  }

  function renderQueue(queue) {
    if (!queueStatusEl) return;
    if (queue) lastQueue = queue;
    var q = lastQueue;
    if (!q) return;
    var parts = [];
    var queued = q.queued || 0;
    var running = q.running || 0;
    if (!queued && !running) parts.push("Queue is empty");
    else parts.push("Queue: " + queued + " waiting · " + running + " running");
    var noWorker = workers === 0;
    if (noWorker) parts.push("no worker online — tasks wait until one starts");
    queueStatusEl.textContent = parts.join(" · ");
    queueStatusEl.classList.toggle("is-warning", noWorker);
  }

  function refreshQueue() {
    api("GET", "/api/v1/queue").then(function (res) {
      if (!res.ok || !res.data) return;
      if (typeof res.data.workers === "number") workers = res.data.workers;
      renderQueue({ queued: res.data.queued, running: res.data.running });
    });
  }

  function hasUnfinished() {
    var found = false;
    tasks.forEach(function (task) { if (!FINAL_STATES[task.state]) found = true; });
    return found;
  }

  function startSocket() {
    if (typeof window.io !== "function") {
      setConnection("disconnected", "Live updates unavailable — refreshing every few seconds");
      return null;
    }
    var socket = window.io({ transports: ["websocket", "polling"] });

    socket.on("connect", function () {
      socketConnected = true;
      setConnection("connected", "Live");
      // Events may have been missed while we were away: the list is the truth.
      loadTimeline();
      refreshQueue();
      refreshBalance();
    });
    socket.on("disconnect", function () {
      socketConnected = false;
      setConnection("disconnected", "Reconnecting…");
    });
    socket.on("connect_error", function () {
      socketConnected = false;
      setConnection("disconnected", "Offline — retrying…");
    });
    socket.on("task", applyEvent);
    socket.on("queue", function (queue) { renderQueue(queue); });
    return socket;
  }

  /* Safety net: without a live connection, poll while something is still in progress. */
  window.setInterval(function () {
    if (!socketConnected && hasUnfinished() && !document.hidden) loadTimeline();
  }, 4000);

  /* ------------------------------------------------------------------ start-up */

  updatePromptCount();
  NUMBER_FIELDS.forEach(syncRangeFromNumber);
  onFormChanged();
  updateEmptyState();
  loadTimeline();
  refreshQueue();
  startSocket();

  // For the console and tests: a read-only peek at the client state.
  window.daydreamStudio = {
    tasks: tasks,
    applyEvent: applyEvent,
    reload: loadTimeline,
    computeCost: computeCost,
  };
})();
