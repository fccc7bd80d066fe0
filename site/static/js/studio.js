/* Daydream studio: the generate panel, the session timeline and live updates.
 *
 * Layout of this file:
 *   1. config, DOM helpers, formatting
 *   2. API client (fetch + CSRF + error shape), the balance and the user's settings
 *   3. the generate form: sliders, size limits, seed and its lock, help, cost and the
 *      server's estimate, the init image (image-to-image), drawer, submit
 *   4. the timeline: a store of tasks, one render function per card, and applyEvent(),
 *      the one place where live events change tasks
 *   5. Socket.IO wiring, the settings popover and start-up
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
  var limits = config.limits || {};
  if (!limits.max_side) limits.max_side = 768;
  if (!limits.max_pixels) limits.max_pixels = limits.max_side * limits.max_side;
  if (!limits.max_samples) limits.max_samples = 4;
  var MIN_SIDE = 64;
  var schedulerLabels = config.schedulers || {};
  var modelNames = {};
  (config.models || []).forEach(function (m) { modelNames[m.id] = m.name; });

  var FINAL_STATES = { done: true, failed: true, canceled: true };
  var STATE_RANK = { queued: 0, running: 1, done: 2, failed: 2, canceled: 2 };
  var STATE_LABELS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", canceled: "Canceled" };
  // ?session=ID shows an earlier session's timeline; the current one otherwise.
  var pageParams = new URLSearchParams(window.location.search);
  var viewedSession = pageParams.get("session") || "";
  if (viewedSession === "current" || viewedSession === (config.sessionid || "")) viewedSession = "";
  var TASK_LIST_URL = "/api/v1/tasks?session=" + encodeURIComponent(viewedSession || "current") + "&limit=200";
  var UPLOAD_TYPES = ["image/png", "image/jpeg", "image/webp"];

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  var byId = Daydream.byId;

  /** Create an element: el("p", {class: "x", text: "hi"}, [children]). */
  var el = Daydream.el;

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function formatNumber(n) {
    try { return Number(n).toLocaleString("en-US"); } catch (err) { return String(n); }
  }

  function formatEta(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds) || seconds < 0) return "";
    if (seconds >= 120) return "about " + Math.round(seconds / 60) + " min left";
    return "about " + Math.max(1, Math.round(seconds)) + " s left";
  }

  /** "12 s", "3 min": for the estimate line. */
  function formatSeconds(seconds) {
    if (seconds >= 120) return Math.round(seconds / 60) + " min";
    return (seconds > 0 ? Math.max(1, Math.round(seconds)) : 0) + " s";
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

  function isNumber(v) { return typeof v === "number" && isFinite(v); }

  /* localStorage can throw (private mode, disabled storage): never let it break the page. */
  function remember(key, value) {
    try { window.localStorage.setItem("daydream." + key, value); } catch (err) { /* ignore */ }
  }
  function recall(key) {
    try { return window.localStorage.getItem("daydream." + key); } catch (err) { return null; }
  }

  /* ------------------------------------------------------------------ 2. API */

  /**
   * Call the API (the shared one of app.js). body: a JSON-able value, or FormData
   * (multipart, the browser sets the boundary); headers: extra request headers.
   * Resolves (never rejects) to {ok, status, data, error, retryAfter}; error is
   * the API's {code, message, field?, fields?} or a synthesized one.
   */
  function api(method, path, body, headers) {
    return Daydream.api(method, path, body, {
      headers: headers,
      messages: {
        401: "You are signed out.",
        413: "That is too large for the server.",
        other: "The server answered {status}. Please try again.",
        network: "Could not reach the server. Check your connection and try again.",
      },
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

  /* The user's studio settings (PATCH /api/v1/me {settings: {...}}). */
  var userSettings = { cancel_on_leave: false, previews: true };

  /** Take what GET/PATCH /api/v1/me answered: the balance and the settings. */
  function applyMe(user) {
    if (!user) return;
    if (typeof user.tokens === "number") setBalance(user.tokens);
    if (user.settings && typeof user.settings === "object") {
      var previewsBefore = userSettings.previews;
      Object.keys(user.settings).forEach(function (k) { userSettings[k] = user.settings[k]; });
      renderSettings();
      if (previewsBefore !== userSettings.previews) rerenderAll();
    }
  }

  var balanceTimer = null;
  function refreshBalance() {
    window.clearTimeout(balanceTimer);
    balanceTimer = window.setTimeout(function () {
      api("GET", "/api/v1/me").then(function (res) {
        if (res.ok && res.data) applyMe(res.data);
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
  var seedLock = byId("seed-lock");
  var timelineSection = byId("timeline");
  var sizeHint = byId("size-hint");
  var sizeHintDefault = sizeHint ? sizeHint.textContent : "";

  var NUMBER_FIELDS = ["width", "height", "steps", "guidance", "samples", "strength"];
  var FIELD_NAMES = ["prompt", "negative_prompt", "width", "height", "steps", "guidance", "samples", "seed",
                     "scheduler", "model", "strength", "init_image", "board_id"];
  /* Where a field's error goes when it is not "{field}-error" next to "#{field}". */
  var ERROR_BOX = { init_image: "init-error" };
  var ERROR_INPUT = { init_image: "init-file" };
  var FIELD_LABELS = {
    prompt: "The prompt", negative_prompt: "The negative prompt", width: "Width", height: "Height",
    steps: "Steps", guidance: "Guidance", samples: "Images", seed: "The seed", scheduler: "The scheduler",
    model: "The model", strength: "Strength", init_image: "The init image", board_id: "The board",
  };

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
      var id = range.dataset.sync;
      if (target) target.value = range.value;
      paintRange(range);
      clearFieldError(id);
      if (id === "width" || id === "height") enforceSizeLimits(id);
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

  // Width and height are clamped to the limits once typed (on change, not per keystroke).
  ["width", "height"].forEach(function (id) {
    var input = byId(id);
    if (!input) return;
    input.addEventListener("change", function () {
      if (enforceSizeLimits(id)) onFormChanged();
    });
  });

  $all("#scheduler, #model").forEach(function (select) {
    select.addEventListener("change", function () { onFormChanged(); });
  });

  function onFormChanged() {
    updateCost();
    updatePresetState();
    updateSeedControls();
    scheduleEstimate();
  }

  /* ---------- size: stay inside limits.max_side and limits.max_pixels ---------- */

  function snap8(v) { return Math.round(v / 8) * 8; }
  function floor8(v) { return Math.floor(v / 8) * 8; }

  function setSizeHint(message) {
    if (!sizeHint) return;
    sizeHint.textContent = message || sizeHintDefault;
    sizeHint.classList.toggle("is-note", !!message);
  }

  /**
   * The side just changed (`changed`: "width" or "height") is clamped to max_side; when
   * width × height would pass max_pixels the other side is lowered. Says so in #size-hint.
   * Returns true when a value was changed.
   */
  function enforceSizeLimits(changed) {
    var other = changed === "width" ? "height" : "width";
    var a = numberValue(changed);
    var b = numberValue(other);
    var notes = [];
    var touched = false;
    if (a !== null && a > limits.max_side) {
      a = limits.max_side;
      setField(changed, a);
      notes.push(FIELD_LABELS[changed] + " is at most " + limits.max_side + " px.");
      touched = true;
    }
    if (a !== null && b !== null && a > 0 && a * b > limits.max_pixels) {
      var lowered = Math.max(MIN_SIDE, floor8(limits.max_pixels / a));
      if (lowered * a > limits.max_pixels) {
        // Even the smallest other side is too much: lower this side instead.
        a = Math.max(MIN_SIDE, floor8(limits.max_pixels / lowered));
        setField(changed, a);
      }
      setField(other, lowered);
      notes.push(FIELD_LABELS[other] + " lowered to " + lowered + " px: " + a + " × " + lowered +
                 " stays within " + formatNumber(limits.max_pixels) + " pixels.");
      touched = true;
    }
    if (notes.length) setSizeHint(notes.join(" "));
    else if (a !== null && b !== null) setSizeHint("");
    return touched;
  }

  /** The largest size of ratio w:h, no larger than w × h, that fits the limits (multiples of 8). */
  function fitSize(w, h) {
    var scale = Math.min(1, limits.max_side / w, limits.max_side / h, Math.sqrt(limits.max_pixels / (w * h)));
    var fw = Math.max(MIN_SIDE, floor8(w * scale));
    var fh = Math.max(MIN_SIDE, floor8(h * scale));
    while (fw * fh > limits.max_pixels && (fw > MIN_SIDE || fh > MIN_SIDE)) {
      if (fw >= fh && fw > MIN_SIDE) fw -= 8; else fh -= 8;
    }
    return [Math.min(fw, limits.max_side), Math.min(fh, limits.max_side)];
  }

  /** Size for ratio a:b with about `area` pixels, inside the limits. */
  function sizeForRatio(a, b, area) {
    var w = Math.sqrt((area * a) / b);
    var h = w * (b / a);
    w = Math.max(MIN_SIDE, snap8(w));
    h = Math.max(MIN_SIDE, snap8(h));
    return fitSize(w, h);
  }

  function currentArea() {
    var w = numberValue("width");
    var h = numberValue("height");
    return w && h && w > 0 && h > 0 ? w * h : 512 * 512;
  }

  function currentRatio() {
    var w = numberValue("width");
    var h = numberValue("height");
    return w && h && w > 0 && h > 0 ? w / h : 1;
  }

  function ratioOf(chip) {
    var parts = chip.dataset.size.split(":").map(Number);
    return parts[0] / parts[1];
  }

  /** A ratio chip is off when the limits cannot hold that shape; a scale chip when its area cannot fit. */
  function ratioPossible(chip) {
    var parts = chip.dataset.size.split(":").map(Number);
    var size = sizeForRatio(parts[0], parts[1], currentArea());
    return Math.abs(size[0] / size[1] - ratioOf(chip)) / ratioOf(chip) < 0.04;
  }

  function scalePossible(chip) {
    var s = Number(chip.dataset.scale);
    return s <= limits.max_side && s * s <= limits.max_pixels;
  }

  function updatePresetState() {
    var w = numberValue("width");
    var h = numberValue("height");
    $all(".size-presets [data-size]").forEach(function (chip) {
      var possible = ratioPossible(chip);
      var active = possible && w && h && Math.abs(w / h - ratioOf(chip)) < 0.03;
      chip.classList.toggle("is-active", !!active);
      chip.setAttribute("aria-pressed", active ? "true" : "false");
      chip.disabled = !possible;
      chip.title = possible ? "" : "Not possible within " + limits.max_side + " px a side";
    });
    $all(".size-presets [data-scale]").forEach(function (chip) {
      var s = Number(chip.dataset.scale);
      var possible = scalePossible(chip);
      var active = possible && w && h && Math.abs(Math.sqrt(w * h) - s) / s < 0.04;
      chip.classList.toggle("is-active", !!active);
      chip.setAttribute("aria-pressed", active ? "true" : "false");
      chip.disabled = !possible;
      chip.title = possible
        ? "About " + s + " × " + s + " pixels in all"
        : s + " × " + s + " is more than you may ask for (" + limits.max_side + " px a side, " +
          formatNumber(limits.max_pixels) + " pixels)";
    });
  }

  function applySize(size, note) {
    setField("width", size[0]);
    setField("height", size[1]);
    setSizeHint(note || "");
    onFormChanged();
  }

  $all(".size-presets [data-size]").forEach(function (chip) {
    chip.addEventListener("click", function () {
      if (chip.disabled) return;
      var parts = chip.dataset.size.split(":").map(Number);
      applySize(sizeForRatio(parts[0], parts[1], currentArea()));
    });
  });

  $all(".size-presets [data-scale]").forEach(function (chip) {
    chip.addEventListener("click", function () {
      var s = Number(chip.dataset.scale);
      if (!scalePossible(chip)) {
        setSizeHint(s + " × " + s + " is over your limit: up to " + limits.max_side + " px a side, " +
                    formatNumber(limits.max_pixels) + " pixels in all.");
        return;
      }
      var r = currentRatio();
      var w = Math.max(MIN_SIDE, snap8(s * Math.sqrt(r)));
      var h = Math.max(MIN_SIDE, snap8(s / Math.sqrt(r)));
      var fitted = fitSize(w, h);
      var note = fitted[0] !== w || fitted[1] !== h
        ? "Made " + fitted[0] + " × " + fitted[1] + " to stay within " + limits.max_side + " px a side and " +
          formatNumber(limits.max_pixels) + " pixels."
        : "";
      applySize(fitted, note);
    });
  });

  var swapButton = byId("size-swap");
  if (swapButton) {
    swapButton.addEventListener("click", function () {
      var w = byId("width").value;
      setField("width", byId("height").value);
      setField("height", w);
      setSizeHint("");
      onFormChanged();
    });
  }

  /* ---------- seed: empty means random; the die picks one now; the lock keeps it ---------- */

  var seedLocked = recall("seedLocked") === "1";

  function updateSeedControls() {
    if (seedClear) seedClear.hidden = !seedInput || seedInput.value === "";
  }

  function renderSeedLock() {
    if (seedLock) {
      seedLock.setAttribute("aria-pressed", seedLocked ? "true" : "false");
      seedLock.classList.toggle("is-on", seedLocked);
      seedLock.title = seedLocked ? "The seed is kept between images" : "Keep the seed between images";
    }
    var state = byId("seed-lock-state");
    if (state) {
      state.textContent = seedLocked
        ? "Locked: the same seed for the next images."
        : "Unlocked: a new random seed after each image.";
    }
  }

  if (seedLock) {
    seedLock.addEventListener("click", function () {
      seedLocked = !seedLocked;
      remember("seedLocked", seedLocked ? "1" : "0");
      renderSeedLock();
    });
  }

  /** After a successful submit: unlocked clears the seed to random; locked keeps it (or takes the one picked). */
  function seedAfterSubmit(task) {
    if (!seedInput) return;
    if (!seedLocked) {
      setField("seed", "");
    } else if (seedInput.value.trim() === "" && task && isNumber(task.seed)) {
      setField("seed", task.seed);
    }
    updateSeedControls();
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
  if (seedInput) seedInput.addEventListener("input", function () { updateSeedControls(); scheduleEstimate(); });

  /* ---------- help: a short explanation beside every setting ---------- */

  var helpToggle = byId("help-toggle");

  function setHelp(on) {
    if (panel) panel.classList.toggle("show-help", on);
    document.body.classList.toggle("show-help", on);
    if (helpToggle) {
      helpToggle.setAttribute("aria-pressed", on ? "true" : "false");
      helpToggle.title = on ? "Hide the explanations" : "Explain every setting";
    }
    remember("help", on ? "1" : "0");
  }

  if (helpToggle) {
    helpToggle.addEventListener("click", function () {
      setHelp(helpToggle.getAttribute("aria-pressed") !== "true");
    });
  }

  /* ---------- prompt counter, Ctrl/Cmd+Enter ---------- */

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

  /* ---------- field errors: <p id="{field}-error"> under each field ---------- */

  function showFieldError(field, message) {
    var box = byId(ERROR_BOX[field] || field + "-error");
    var input = byId(ERROR_INPUT[field] || field);
    if (!box || !input) return false;
    box.textContent = message;
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
    return true;
  }

  function clearFieldError(field) {
    var box = byId(ERROR_BOX[field] || field + "-error");
    var input = byId(ERROR_INPUT[field] || field);
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

  /**
   * Show a 422's field errors next to their fields: every field in error.fields when the
   * server names several, else error.field with error.message. Returns the fields shown.
   */
  function showFieldErrors(error, skip) {
    var shown = [];
    var fields = error && error.fields && typeof error.fields === "object" ? error.fields : null;
    if (fields) {
      Object.keys(fields).forEach(function (field) {
        if (skip && skip(field)) return;
        var detail = String(fields[field]);
        // "must be a multiple of 8" reads as "Width must be …"; a whole sentence stays as it is.
        var message = FIELD_LABELS[field] && /^[a-z]/.test(detail) ? FIELD_LABELS[field] + " " + detail : detail;
        if (showFieldError(field, message)) shown.push(field);
      });
    } else if (error && error.field && !(skip && skip(error.field))) {
      if (showFieldError(error.field, error.message || "Check this field.")) shown.push(error.field);
    }
    return shown;
  }

  var retryTimer = null;

  function showFormError(message, linkHref, linkText) {
    if (!formError) return;
    window.clearInterval(retryTimer);
    formError.textContent = message;
    if (linkHref) {
      formError.appendChild(document.createTextNode(" "));
      formError.appendChild(el("a", { href: linkHref, text: linkText }));
    }
    formError.hidden = false;
  }

  function hideFormError() {
    if (!formError) return;
    window.clearInterval(retryTimer);
    formError.hidden = true;
    formError.textContent = "";
  }

  /** 429: the queue is full (or too many of yours wait). Nothing was charged; count down Retry-After. */
  function showRetryError(message, seconds) {
    var base = String(message || "The queue is full right now.").trim();
    if (!/[.!?]$/.test(base)) base += ".";
    var left = seconds > 0 ? Math.ceil(seconds) : 0;
    var render = function () {
      formError.textContent = base + " Nothing was charged; " +
        (left > 0 ? "try again in " + left + " s." : "you can try again now.");
    };
    showFormError("");
    render();
    if (left > 0) {
      retryTimer = window.setInterval(function () {
        left -= 1;
        render();
        if (left <= 0) window.clearInterval(retryTimer);
      }, 1000);
    }
  }

  /* ---------- cost (instant, client formula) and the server's estimate ---------- */

  /* Cost: samples × ceil(steps × width × height / (50 × 512 × 512)), as API.md says. */
  function computeCost() {
    var samples = numberValue("samples");
    var steps = numberValue("steps");
    var width = numberValue("width");
    var height = numberValue("height");
    if ([samples, steps, width, height].some(function (v) { return v === null || v <= 0; })) return null;
    return samples * Math.ceil((steps * width * height) / (50 * 512 * 512));
  }

  /* The server's answer for the current parameters (null while stale), and whether it
     charges this user at all (staff generate free of charge unless configured). */
  var serverCost = null;
  var freeOfCharge = false;

  function updateCost() {
    var costEl = byId("cost");
    if (!costEl) return;
    var formula = computeCost();
    var cost = serverCost !== null ? serverCost : (freeOfCharge && formula !== null ? 0 : formula);
    var tokens = currentTokens();
    var line = byId("cost-line");
    costEl.textContent = cost === null ? "–" : String(cost);
    costEl.dataset.cost = cost === null ? "" : String(cost);
    costEl.dataset.source = serverCost !== null ? "server" : "formula";
    var unit = byId("cost-unit");
    if (unit) unit.textContent = cost === 1 ? "token" : "tokens";
    var balanceHint = byId("cost-balance");
    var short = cost !== null && tokens !== null && cost > tokens;
    if (balanceHint) {
      balanceHint.textContent = tokens === null ? "" : (short ? "You have only " : "You have ") + plural(tokens, "token", "tokens");
    }
    if (line) line.classList.toggle("is-short", short);
  }

  var estimateEl = byId("estimate");
  var estimateTimer = null;
  var estimateSeq = 0;
  var estimateErrorFields = [];
  /* The estimate does not depend on the prompt; with none typed yet this stands in for it. */
  var ESTIMATE_PROMPT = "estimate";

  function setEstimate(state, text, title) {
    if (!estimateEl) return;
    estimateEl.dataset.state = state;
    estimateEl.textContent = text;
    estimateEl.title = title || "";
  }

  function scheduleEstimate(delay) {
    serverCost = null;
    updateCost();
    window.clearTimeout(estimateTimer);
    estimateTimer = window.setTimeout(runEstimate, delay === undefined ? 300 : delay);
  }

  function describeEstimate(data) {
    var position = isNumber(data.position) ? data.position : null;
    var title = position !== null
      ? (position <= 1 ? "It would be next in line." : "It would be number " + position + " in the queue.")
      : "";
    if (data.eta_s === null || data.eta_s === undefined) {
      return { text: "No estimate yet: nothing like this has run here so far.", title: title };
    }
    var wait = isNumber(data.wait_s) ? data.wait_s : null;
    var run = isNumber(data.run_s) ? data.run_s : null;
    var text;
    if (wait !== null && run !== null) text = "≈ " + formatSeconds(wait) + " to wait, " + formatSeconds(run) + " to run";
    else if (isNumber(data.eta_s)) text = "≈ " + formatSeconds(data.eta_s) + " until it is done";
    else text = "No estimate yet";
    return { text: text, title: title };
  }

  function runEstimate() {
    var payload = readForm();
    if (!String(payload.prompt || "").trim()) payload.prompt = ESTIMATE_PROMPT;
    var seq = ++estimateSeq;
    if (estimateEl) estimateEl.classList.add("is-loading");
    api("POST", "/api/v1/estimate", payload).then(function (res) {
      if (seq !== estimateSeq) return; // a newer request is on its way
      if (estimateEl) estimateEl.classList.remove("is-loading");
      // The errors the previous estimate showed are the estimate's to take back.
      estimateErrorFields.forEach(clearFieldError);
      estimateErrorFields = [];
      if (res.ok && res.data) {
        var formula = computeCost();
        if (isNumber(res.data.cost)) {
          serverCost = res.data.cost;
          freeOfCharge = res.data.cost === 0 && formula !== null && formula > 0;
        }
        updateCost();
        var d = describeEstimate(res.data);
        setEstimate(res.data.eta_s === null || res.data.eta_s === undefined ? "none" : "ok", d.text, d.title);
        return;
      }
      if (res.status === 422 || res.status === 400) {
        estimateErrorFields = showFieldErrors(res.error, function (field) {
          // The placeholder prompt stands in; never blame the prompt the person has not typed.
          return field === "prompt" && payload.prompt === ESTIMATE_PROMPT;
        });
        if (!estimateErrorFields.length && res.error && res.error.message) {
          setEstimate("error", res.error.message);
        } else {
          setEstimate("error", "Fix the marked setting to see an estimate.");
        }
        return;
      }
      if (res.status === 401) {
        setEstimate("error", "You were signed out.");
        return;
      }
      setEstimate("error", "No estimate right now.");
    });
  }

  /* ---------- init image (image-to-image) ---------- */

  var initFile = byId("init-file");
  var initDrop = byId("init-drop");
  var initPreview = byId("init-preview");
  var initThumb = byId("init-thumb");
  var initSize = byId("init-size");
  var initClear = byId("init-clear");
  var initError = byId("init-error");
  var initStatus = byId("init-status");
  var strengthField = byId("strength-field");
  var initImage = null; // {id, width, height, thumbnail_url}
  var uploading = false;
  var uploadSeq = 0;

  function setInitStatus(text) {
    if (!initStatus) return;
    initStatus.textContent = text || "";
    initStatus.hidden = !text;
  }

  function showInitError(message) {
    if (!initError) return;
    initError.textContent = message;
    initError.hidden = false;
    if (initFile) initFile.setAttribute("aria-invalid", "true");
  }

  function hideInitError() {
    clearFieldError("init_image");
  }

  function renderInitImage() {
    var on = !!initImage;
    if (initPreview) {
      initPreview.hidden = !on;
      if (on) initPreview.dataset.imageId = initImage.id;
      else delete initPreview.dataset.imageId;
    }
    if (initThumb) {
      if (on) {
        var src = initImage.thumbnail_url || "/api/v1/images/" + encodeURIComponent(initImage.id) + "/thumbnail";
        if (initThumb.getAttribute("src") !== src) initThumb.src = src;
        if (initImage.width && initImage.height) {
          initThumb.width = initImage.width;
          initThumb.height = initImage.height;
        }
      } else {
        initThumb.removeAttribute("src");
      }
    }
    if (initSize) {
      initSize.textContent = on && initImage.width && initImage.height
        ? initImage.width + " × " + initImage.height + (initImage.kind === "upload" ? " · uploaded" : " · from a result")
        : "";
    }
    if (strengthField) strengthField.hidden = !on;
    var title = byId("init-drop-title");
    if (title) title.textContent = on ? "Drop or choose another picture to replace it" : "Drop a picture or choose a file";
    if (initDrop) initDrop.classList.toggle("has-image", on);
  }

  function setInitImage(image) {
    initImage = image && image.id ? {
      id: image.id, width: image.width, height: image.height, kind: image.kind,
      thumbnail_url: image.thumbnail_url,
    } : null;
    hideInitError();
    renderInitImage();
    scheduleEstimate();
  }

  function clearInitImage() {
    uploadSeq++; // an upload still on its way no longer applies
    uploading = false;
    setInitStatus("");
    if (initDrop) initDrop.classList.remove("is-busy");
    setInitImage(null);
  }

  /** Decode a picture: createImageBitmap where there is one, else an <img> on a blob: URL. */
  function decodeImage(file) {
    var viaImg = function () {
      return new Promise(function (resolve, reject) {
        var url = URL.createObjectURL(file);
        var img = new Image();
        img.onload = function () { resolve({ source: img, width: img.naturalWidth, height: img.naturalHeight, done: function () { URL.revokeObjectURL(url); } }); };
        img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("undecodable")); };
        img.src = url;
      });
    };
    if (typeof window.createImageBitmap === "function") {
      return window.createImageBitmap(file).then(function (bitmap) {
        return { source: bitmap, width: bitmap.width, height: bitmap.height, done: function () { if (bitmap.close) bitmap.close(); } };
      }, viaImg);
    }
    return viaImg();
  }

  function canvasBlob(canvas, type, quality) {
    return new Promise(function (resolve) {
      if (!canvas.toBlob) { resolve(null); return; }
      canvas.toBlob(function (blob) { resolve(blob); }, type, quality);
    });
  }

  /**
   * Scale the picture down to fit the chosen width × height (never up) and compress it:
   * WebP at quality 0.9, or PNG where the browser cannot encode WebP.
   * Resolves to {blob, name} or null when the browser cannot decode it (the server judges then).
   */
  function preparePicture(file) {
    var maxW = numberValue("width");
    var maxH = numberValue("height");
    if (!maxW || maxW < MIN_SIDE) maxW = 512;
    if (!maxH || maxH < MIN_SIDE) maxH = 512;
    maxW = Math.min(maxW, limits.max_side);
    maxH = Math.min(maxH, limits.max_side);
    var base = String(file.name || "init").replace(/\.[^.]*$/, "") || "init";
    return decodeImage(file).then(function (decoded) {
      var scale = Math.min(1, maxW / decoded.width, maxH / decoded.height);
      var w = Math.max(1, Math.round(decoded.width * scale));
      var h = Math.max(1, Math.round(decoded.height * scale));
      var canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      var ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(decoded.source, 0, 0, w, h);
      decoded.done();
      return canvasBlob(canvas, "image/webp", 0.9).then(function (blob) {
        if (blob && blob.type === "image/webp") return { blob: blob, name: base + ".webp" };
        return canvasBlob(canvas, "image/png").then(function (png) {
          return png ? { blob: png, name: base + ".png" } : null;
        });
      });
    }, function () { return null; });
  }

  function uploadMessage(res) {
    var message = res.error && res.error.message;
    if (res.status === 413) return message || "That picture is too large to upload.";
    if (res.status === 415) return message || "That file is not a PNG, JPEG or WebP picture, or it is damaged.";
    if (res.status === 422) return message || "That picture has too many pixels.";
    if (res.status === 401) return "You were signed out; sign in again to upload.";
    return message || "The upload failed. Please try again.";
  }

  function handleInitFile(file) {
    if (!file) return;
    hideInitError();
    var seq = ++uploadSeq;
    uploading = true;
    if (initDrop) initDrop.classList.add("is-busy");
    setInitStatus("Preparing the picture…");
    preparePicture(file).then(function (prepared) {
      if (seq !== uploadSeq) return null;
      var data = new FormData();
      if (prepared) data.append("file", prepared.blob, prepared.name);
      else data.append("file", file, file.name || "upload"); // undecodable here: let the server say why
      setInitStatus("Uploading…");
      return api("POST", "/api/v1/uploads", data);
    }).then(function (res) {
      if (!res || seq !== uploadSeq) return;
      uploading = false;
      if (initDrop) initDrop.classList.remove("is-busy");
      setInitStatus("");
      if (res.ok && res.data && res.data.id) {
        setInitImage(res.data);
        announce("Init image ready.");
      } else {
        showInitError(uploadMessage(res));
      }
    });
  }

  if (initFile) {
    initFile.addEventListener("change", function () {
      var file = initFile.files && initFile.files[0];
      handleInitFile(file);
      initFile.value = ""; // the same file again fires change again
    });
  }

  function draggingFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  if (initDrop) {
    var dragDepth = 0;
    initDrop.addEventListener("dragenter", function (event) {
      if (!draggingFiles(event)) return;
      event.preventDefault();
      dragDepth++;
      initDrop.classList.add("is-dragging");
    });
    initDrop.addEventListener("dragover", function (event) {
      if (!draggingFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    initDrop.addEventListener("dragleave", function () {
      dragDepth = Math.max(0, dragDepth - 1);
      if (!dragDepth) initDrop.classList.remove("is-dragging");
    });
    initDrop.addEventListener("drop", function (event) {
      event.preventDefault();
      dragDepth = 0;
      initDrop.classList.remove("is-dragging");
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) handleInitFile(files[0]);
    });
  }

  // Pasting a picture anywhere in the panel makes it the init image.
  if (panel) {
    panel.addEventListener("paste", function (event) {
      var items = event.clipboardData && event.clipboardData.files;
      if (!items || !items.length) return;
      var file = Array.prototype.find.call(items, function (f) { return /^image\//.test(f.type); });
      if (!file) return;
      event.preventDefault();
      handleInitFile(file);
    });
  }

  if (initClear) {
    initClear.addEventListener("click", function () {
      clearInitImage();
      if (initFile) initFile.focus();
    });
  }

  /* ---------- the drawer (narrow screens only): the panel slides over the timeline ---------- */

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

  /* ---------- submit ---------- */

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
    var board = byId("board_id");
    if (board && board.value) payload.board_id = board.value;
    if (initImage) {
      payload.init_image = initImage.id;
      var strength = numberValue("strength");
      payload.strength = strength === null ? 0.75 : strength;
    }
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
      var shown = showFieldErrors(error);
      if (shown.length) {
        var input = byId(ERROR_INPUT[shown[0]] || shown[0]);
        if (input && input.type !== "file") input.focus();
        return;
      }
      showFormError(message);
    } else if (res.status === 402) {
      showFormError(message || "You do not have enough tokens for this. Lower the steps, size or number of images.");
    } else if (res.status === 429) {
      showRetryError(message, parseInt(res.retryAfter, 10));
    } else if (res.status === 401) {
      showFormError("You were signed out.", "/login?next=/studio", "Sign in again");
    } else {
      showFormError(message);
    }
  }

  function submitForm() {
    if (submitting) return;
    clearErrors();
    if (uploading) {
      showFormError("The init image is still uploading; generate again in a moment.");
      return;
    }
    var payload = readForm();
    setSubmitting(true);
    api("POST", "/api/v1/tasks", payload, { "Idempotency-Key": newIdempotencyKey() }).then(function (res) {
      setSubmitting(false);
      if (res.ok && res.data && res.data.id) {
        if (viewedSession) {
          window.location.href = "/studio"; // new tasks belong to the current session
          return;
        }
        upsertTask(res.data, { top: true });
        seedAfterSubmit(res.data);
        closePanel(false);
        window.scrollTo({ top: 0, behavior: "smooth" });
        announce("Queued: " + shorten(res.data.prompt, 80));
        refreshBalance();
        scheduleEstimate();
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

  /**
   * Put a task's settings back into the form. options.seed overrides the task's seed;
   * options.init: an image to start from, null to clear the init image, or undefined for
   * the task's own init image (if it had one).
   */
  function reuseSettings(task, options) {
    options = options || {};
    setField("prompt", task.prompt || "");
    setField("negative_prompt", task.negative_prompt || "");
    ["width", "height", "steps", "guidance", "samples"].forEach(function (id) {
      if (task[id] !== undefined && task[id] !== null) setField(id, task[id]);
    });
    var seed = options.seed !== undefined ? options.seed : task.seed;
    setField("seed", seed === null || seed === undefined ? "" : seed);
    if (task.scheduler) setField("scheduler", task.scheduler);
    if (task.model) setField("model", task.model);
    setSizeHint("");

    var init = options.init;
    if (init === undefined) {
      var own = task.init_image;
      if (own && typeof own === "object") init = own;
      else if (typeof own === "string" && own) init = { id: own };
      else init = null;
    }
    if (init) {
      setInitImage(init);
      if (isNumber(task.strength)) setField("strength", task.strength);
    } else {
      clearInitImage();
    }

    updatePromptCount();
    onFormChanged();
    if (isDrawer()) openPanel();
    else if (promptInput) promptInput.focus();
    if (init && initPreview && initPreview.scrollIntoView && !isDrawer()) {
      initPreview.scrollIntoView({ block: "nearest" });
    }
  }

  /* ------------------------------------------------------------------ 4. the timeline */

  var taskList = byId("task-list");
  var emptyState = byId("timeline-empty");
  var loadingNote = byId("timeline-loading");
  var timelineAlert = byId("timeline-alert");

  /** id -> task (API "Task" shape, plus _preview and _sample from live events). */
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
        if ("_sample" in current) merged._sample = current._sample;
      }
      // Images only accumulate while a task runs: an older snapshot never takes one away.
      if (Array.isArray(current.images) && Array.isArray(incoming.images) &&
          incoming.images.length < current.images.length && !FINAL_STATES[incoming.state]) {
        merged.images = current.images;
      }
    }
    if (FINAL_STATES[merged.state]) {
      delete merged._preview;
      delete merged._sample;
    }
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

  function rerenderAll() {
    tasks.forEach(function (task) { renderTask(task, {}); });
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
    if (isNumber(ev.sample)) patch._sample = ev.sample;
    if (isNumber(ev.samples) && ev.samples > 0) patch.samples = ev.samples;
    if (isNumber(ev.seed)) patch.seed = ev.seed;
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
      if (viewedSession) return; // a task of the current session: not shown here
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
      scheduleEstimate(600);
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
        el("li", { class: "task-init", hidden: true }),
        el("li", { class: "task-cost", hidden: true }),
      ]),
      el("div", { class: "task__status" }, [
        el("p", { class: "task__status-text" }, [
          el("span", { class: "task-position", hidden: true }),
          el("span", { class: "task-sample", hidden: true }),
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
    // Per-image actions (the figures come and go as images arrive).
    $(".task-images", card).addEventListener("click", function (event) {
      var button = event.target.closest(".image-variant, .image-reuse");
      if (!button) return;
      var figure = button.closest(".task-figure");
      var current = tasks.get(card.dataset.taskId);
      if (!figure || !current) return;
      var image = (current.images || []).filter(function (img) { return img.id === figure.dataset.imageId; })[0];
      if (!image) return;
      var seed = isNumber(image.seed) ? image.seed : current.seed;
      if (button.classList.contains("image-variant")) {
        reuseSettings(current, { seed: seed, init: image });
        announce("Variant: the panel starts from this image with seed " + seed + ".");
      } else {
        reuseSettings(current, { seed: seed, init: null });
        announce("Settings of this image are in the panel.");
      }
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

  /** The 0-based index of the sample being rendered, from the event or from the step. */
  function currentSample(task) {
    var samples = Math.max(1, task.samples || 1);
    if (isNumber(task._sample)) return Math.min(samples - 1, Math.max(0, task._sample));
    var progress = task.progress || {};
    if (task.steps && progress.total === task.steps * samples) {
      return Math.min(samples - 1, Math.floor((progress.step || 0) / task.steps));
    }
    return null;
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

    var cancel = $(".task-cancel", card);
    cancel.hidden = !(state === "queued" || state === "running");
    cancel.setAttribute("aria-label", state === "running" ? "Stop this task and get its tokens back" : "Cancel this task and get its tokens back");
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
    setText($(".task-init", card), task.init_image
      ? "From an image" + (isNumber(task.strength) ? " · strength " + task.strength : "")
      : "");
    setText($(".task-cost", card), typeof task.cost === "number" && task.cost > 0 ? plural(task.cost, "token", "tokens") : "");

    // Status: queue position, image n of N, steps, time left, progress bar (over all samples).
    var status = $(".task__status", card);
    status.hidden = finished;
    if (!finished) {
      var samples = Math.max(1, task.samples || 1);
      var progress = task.progress || {};
      var total = progress.total || (task.steps || 1) * samples;
      var step = Math.min(progress.step || 0, total);
      var bar = $(".task-progress", card);
      bar.max = total;
      bar.value = state === "running" ? step : 0;
      bar.setAttribute("aria-valuetext", state === "running" ? "step " + step + " of " + total : "waiting");

      var position = task.position;
      setText($(".task-position", card), state === "queued"
        ? (typeof position === "number" ? "Position " + position + " in the queue" : "Waiting in the queue")
        : "");
      var sample = state === "running" && samples > 1 ? currentSample(task) : null;
      setText($(".task-sample", card), sample !== null ? "Image " + (sample + 1) + " of " + samples : "");
      setText($(".task-step", card), state === "running" ? "step " + step + " / " + total : "");
      setText($(".task-eta", card), state === "running" || state === "queued" ? formatEta(task.eta_s) : "");
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

  function createFigure(task, image, i, count) {
    var w = image.width || task.width;
    var h = image.height || task.height;
    var n = i + 1;
    var label = "Image " + n + " of " + count + ": " + shorten(task.prompt, 120);
    return el("figure", {
      class: "task-figure",
      dataset: { slot: "img:" + image.id, imageId: image.id, seed: isNumber(image.seed) ? String(image.seed) : "" },
    }, [
      el("a", {
        class: "task-figure__link", href: image.url, target: "_blank", rel: "noopener",
        "aria-label": "Open image " + n + " full size in a new tab",
      }, [
        el("img", {
          class: "task-image", src: image.thumbnail_url, width: w, height: h,
          loading: "lazy", decoding: "async", alt: label,
        }),
      ]),
      el("figcaption", { class: "task-figure__actions" }, [
        el("button", {
          type: "button", class: "btn btn--tiny btn--ghost image-variant", text: "Variant",
          "aria-label": "Make a variant of image " + n + (isNumber(image.seed) ? " (seed " + image.seed + ")" : ""),
          title: "Start from this image, with its seed",
        }),
        el("button", {
          type: "button", class: "btn btn--tiny btn--ghost image-reuse", text: "Reuse settings",
          "aria-label": "Reuse the settings of image " + n,
          title: "Put these settings and this image's seed in the panel",
        }),
      ]),
    ]);
  }

  function createPlaceholder(task, i, count) {
    var ph = el("div", {
      class: "task-placeholder", role: "img",
      "aria-label": "Image " + (i + 1) + " of " + count + " is being made",
      dataset: { slot: "ph:" + i },
    });
    if (task.width && task.height) ph.style.aspectRatio = task.width + " / " + task.height;
    return ph;
  }

  /**
   * One slot per sample: a finished image (with its actions) or, while the task is not
   * finished, a placeholder sized like the result. Images replace placeholders one by one
   * as they arrive; the live preview goes into the placeholder of the sample being made.
   */
  function renderImages(card, task, images) {
    var grid = $(".task-images", card);
    var state = task.state;
    var finished = !!FINAL_STATES[state];
    var samples = Math.max(1, task.samples || 1);
    var count = finished ? images.length : Math.max(samples, images.length);
    var slots = [];
    for (var i = 0; i < count; i++) slots.push(images[i] ? "img:" + images[i].id : "ph:" + i);

    var signature = slots.join(",") + "|" + task.width + "x" + task.height;
    if (grid.dataset.signature !== signature) {
      grid.dataset.signature = signature;
      var existing = {};
      Array.prototype.forEach.call(grid.children, function (child) { existing[child.dataset.slot] = child; });
      var nodes = slots.map(function (slot, i) {
        var node = existing[slot];
        if (node && slot.indexOf("ph:") === 0 && task.width && task.height) {
          node.style.aspectRatio = task.width + " / " + task.height;
        }
        if (node) return node;
        return slot.indexOf("img:") === 0 ? createFigure(task, images[i], i, count) : createPlaceholder(task, i, count);
      });
      grid.replaceChildren.apply(grid, nodes);
      grid.dataset.count = String(count);
      grid.hidden = count === 0;
    }

    // Live preview: into the placeholder of the sample being rendered.
    var placeholders = $all(".task-placeholder", grid);
    var showPreview = !finished && state === "running" && userSettings.previews !== false && !!task._preview;
    var target = null;
    if (showPreview) {
      var sample = currentSample(task);
      target = sample !== null ? grid.querySelector('[data-slot="ph:' + sample + '"]') : null;
      if (!target) target = placeholders[0] || null;
    }
    placeholders.forEach(function (ph) {
      var preview = ph.querySelector(".task-preview");
      if (ph === target) {
        if (!preview) {
          preview = el("img", { class: "task-preview", alt: "" });
          ph.appendChild(preview);
        }
        if (preview.getAttribute("src") !== task._preview) preview.src = task._preview;
        ph.classList.add("has-preview");
      } else if (preview && (!showPreview || !userSettings.previews || finished)) {
        // Keep the last look of an earlier sample until its image arrives; drop previews otherwise.
        preview.remove();
        ph.classList.remove("has-preview");
      }
    });
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
      scheduleEstimate(600);
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
    socket.on("queue", function (queue) {
      renderQueue(queue);
      // The wait depends on the queue: keep the estimate current, without hammering the server.
      window.clearTimeout(queueEstimateTimer);
      queueEstimateTimer = window.setTimeout(function () { scheduleEstimate(0); }, 1500);
    });
    return socket;
  }
  var queueEstimateTimer = null;

  /* Safety net: without a live connection, poll while something is still in progress. */
  window.setInterval(function () {
    if (!socketConnected && hasUnfinished() && !document.hidden) loadTimeline();
  }, 4000);

  /* ---------- the settings popover (#settings-toggle) ---------- */

  var settingsToggle = byId("settings-toggle");
  var settingsPanel = byId("settings-panel");
  var settingsStatus = byId("settings-status");
  var settingsError = byId("settings-error");
  var settingInputs = $all("#settings-panel input[data-setting]");
  var settingsStatusTimer = null;

  function renderSettings() {
    settingInputs.forEach(function (input) {
      var key = input.dataset.setting;
      if (typeof userSettings[key] === "boolean" && !input.disabled) input.checked = userSettings[key];
    });
  }

  function setSettingsStatus(text) {
    if (!settingsStatus) return;
    window.clearTimeout(settingsStatusTimer);
    settingsStatus.textContent = text;
    if (text) settingsStatusTimer = window.setTimeout(function () { settingsStatus.textContent = ""; }, 2500);
  }

  function openSettings() {
    if (!settingsPanel || !settingsToggle) return;
    settingsPanel.hidden = false;
    settingsToggle.setAttribute("aria-expanded", "true");
    var first = settingInputs[0];
    if (first) first.focus();
  }

  function closeSettings(returnFocus) {
    if (!settingsPanel || !settingsToggle || settingsPanel.hidden) return;
    settingsPanel.hidden = true;
    settingsToggle.setAttribute("aria-expanded", "false");
    if (returnFocus) settingsToggle.focus();
  }

  if (settingsToggle && settingsPanel) {
    settingsToggle.addEventListener("click", function () {
      if (settingsPanel.hidden) openSettings(); else closeSettings(false);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !settingsPanel.hidden) closeSettings(true);
    });
    document.addEventListener("click", function (event) {
      if (settingsPanel.hidden) return;
      if (settingsPanel.contains(event.target) || settingsToggle.contains(event.target)) return;
      closeSettings(false);
    });
  }

  settingInputs.forEach(function (input) {
    input.addEventListener("change", function () {
      var key = input.dataset.setting;
      var value = input.checked;
      var change = {};
      change[key] = value;
      if (settingsError) settingsError.hidden = true;
      input.disabled = true;
      setSettingsStatus("Saving…");
      api("PATCH", "/api/v1/me", { settings: change }).then(function (res) {
        input.disabled = false;
        if (res.ok && res.data) {
          if (!res.data.settings) userSettings[key] = value;
          applyMe(res.data);
          if (key === "previews") rerenderAll();
          setSettingsStatus("Saved.");
        } else {
          input.checked = !value;
          setSettingsStatus("");
          if (settingsError) {
            settingsError.textContent = (res.error && res.error.message) || "Could not save this setting.";
            settingsError.hidden = false;
          }
        }
      });
    });
  });

  /* ---------- boards: new results go straight into the chosen board ---------- */

  var boardSelect = byId("board_id");

  function loadBoards() {
    if (!boardSelect) return;
    api("GET", "/api/v1/boards?limit=200").then(function (res) {
      if (!res.ok || !res.data || !Array.isArray(res.data.items)) return;
      var chosen = recall("board") || "";
      var options = [el("option", { value: "", text: "No board" })].concat(res.data.items.map(function (b) {
        return el("option", { value: b.id, text: b.name });
      }));
      boardSelect.replaceChildren.apply(boardSelect, options);
      var exists = res.data.items.some(function (b) { return b.id === chosen; });
      boardSelect.value = exists ? chosen : "";
      if (chosen && !exists) remember("board", ""); // the board was deleted
    });
  }
  if (boardSelect) {
    boardSelect.addEventListener("change", function () { remember("board", boardSelect.value); });
    // Until the list arrives, the remembered board is already the one a submit uses.
    var remembered = recall("board");
    if (remembered) {
      boardSelect.appendChild(el("option", { value: remembered, text: "Your chosen board" }));
      boardSelect.value = remembered;
    }
  }

  /* ---------- sessions: the list of earlier ones, and viewing one ---------- */

  var sessionsToggle = byId("sessions-toggle");
  var sessionsPanel = byId("sessions-panel");
  var sessionList = byId("session-list");
  var sessionsMore = byId("sessions-more");
  var sessionsLoaded = 0;
  var sessionsTotal = 0;

  function sessionItem(session) {
    var first = formatCreated(session.first_at);
    var last = formatCreated(session.last_at);
    var when = session.first_at ? first.short + (session.last_at && last.short !== first.short ? " – " + last.short : "") : "Just started";
    var label = session.current ? "This session" : when;
    var href = session.current ? "/studio" : "/studio?session=" + encodeURIComponent(session.id);
    var viewing = session.current ? !viewedSession : viewedSession === session.id;
    return el("li", { class: "session-item" + (viewing ? " is-current" : "") }, [
      el("a", { class: "session-item__link", href: href, "aria-current": viewing ? "page" : null,
                title: session.first_at ? first.full : "" }, [
        el("span", { class: "session-item__when", text: label }),
        el("span", { class: "session-item__counts", text: plural(session.task_count, "task", "tasks") + " · " +
          plural(session.image_count, "image", "images") }),
        session.latest_prompt ? el("span", { class: "session-item__prompt", text: shorten(session.latest_prompt, 70) }) : null,
      ]),
    ]);
  }

  function loadSessions(more) {
    if (!more) {
      sessionsLoaded = 0;
      sessionList.replaceChildren();
    }
    var errorBox = byId("sessions-error");
    api("GET", "/api/v1/sessions?limit=20&offset=" + sessionsLoaded).then(function (res) {
      if (!res.ok || !res.data) {
        errorBox.textContent = (res.error && res.error.message) || "Could not load your sessions.";
        errorBox.hidden = false;
        return;
      }
      errorBox.hidden = true;
      sessionsTotal = res.data.total;
      sessionsLoaded += res.data.items.length;
      res.data.items.forEach(function (session) { sessionList.appendChild(sessionItem(session)); });
      sessionsMore.hidden = sessionsLoaded >= sessionsTotal;
    });
  }

  function closeSessions(returnFocus) {
    if (!sessionsPanel || sessionsPanel.hidden) return;
    sessionsPanel.hidden = true;
    sessionsToggle.setAttribute("aria-expanded", "false");
    if (returnFocus) sessionsToggle.focus();
  }

  if (sessionsToggle && sessionsPanel) {
    sessionsToggle.addEventListener("click", function () {
      if (!sessionsPanel.hidden) {
        closeSessions(false);
        return;
      }
      sessionsPanel.hidden = false;
      sessionsToggle.setAttribute("aria-expanded", "true");
      loadSessions(false);
    });
    sessionsMore.addEventListener("click", function () { loadSessions(true); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !sessionsPanel.hidden) closeSessions(true);
    });
    document.addEventListener("click", function (event) {
      if (sessionsPanel.hidden) return;
      if (sessionsPanel.contains(event.target) || sessionsToggle.contains(event.target)) return;
      closeSessions(false);
    });
  }

  function showViewedSession() {
    if (!viewedSession) return;
    var banner = byId("session-banner");
    if (banner) banner.hidden = false;
    var title = byId("timeline-title");
    if (title) title.textContent = "An earlier session";
    document.title = "Earlier session · Daydream";
    api("GET", "/api/v1/sessions?limit=200").then(function (res) {
      if (!res.ok || !res.data) return;
      var found = res.data.items.filter(function (x) { return x.id === viewedSession; })[0];
      if (found && title && found.first_at) {
        title.textContent = "Session of " + new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
          .format(new Date(Date.parse(found.first_at)));
      }
    });
  }

  /* ---------- /studio?reuse=IMAGE or ?variant=IMAGE (from the gallery) ---------- */

  function applyImageFromUrl() {
    var reuse = pageParams.get("reuse");
    var variant = pageParams.get("variant");
    var imageId = variant || reuse;
    if (!imageId) return;
    // Only once: a reload should not pull the settings in again.
    pageParams.delete("reuse");
    pageParams.delete("variant");
    var rest = pageParams.toString();
    window.history.replaceState(null, "", "/studio" + (rest ? "?" + rest : ""));
    var base = "/api/v1/images/" + encodeURIComponent(imageId);
    Promise.all([api("GET", base), api("GET", base + "/metadata")]).then(function (answers) {
      var image = answers[0];
      var meta = answers[1];
      if (!image.ok || !image.data) {
        showFormError((image.error && image.error.message) || "That image could not be found.");
        return;
      }
      var data = meta.ok && meta.data ? meta.data : {};
      var seed = isNumber(image.data.seed) ? image.data.seed : data.seed;
      if (!data.prompt) {
        // An upload (or an image without parameters): start from it, keep the rest.
        setInitImage(image.data);
        if (isDrawer()) openPanel();
        announce("The panel starts from this image.");
        return;
      }
      if (variant) {
        reuseSettings(data, { seed: seed, init: image.data });
        announce("Variant: the panel starts from this image with seed " + seed + ".");
      } else {
        reuseSettings(data, { seed: seed, init: null });
        announce("The settings of this image are in the panel.");
      }
    });
  }

  /* ------------------------------------------------------------------ start-up */

  updatePromptCount();
  NUMBER_FIELDS.forEach(syncRangeFromNumber);
  renderSeedLock();
  renderInitImage();
  setHelp(recall("help") === "1");
  onFormChanged();
  scheduleEstimate(0);
  updateEmptyState();
  loadTimeline();
  refreshQueue();
  refreshBalance();
  startSocket();
  loadBoards();
  showViewedSession();
  applyImageFromUrl();

  // For the console and tests: a read-only peek at the client state.
  window.daydreamStudio = {
    tasks: tasks,
    applyEvent: applyEvent,
    reload: loadTimeline,
    computeCost: computeCost,
    settings: userSettings,
  };
})();
