/* Daydream studio — the generate form: sliders, the size presets and limits, the seed and
 * its lock, help, the prompt counter, and submit (POST /api/v1/tasks). */
import { api, newIdempotencyKey } from "../../lib/api.js";
import { $, $all, announce, byId } from "../../lib/dom.js";
import { formatNumber, isNumber, shorten } from "../../lib/format.js";
import { recall, remember } from "../../lib/storage.js";
import { config } from "./config.js";
import { scheduleEstimate, updateCost } from "./estimate.js";
import {
  FIELD_LABELS, FIELD_NAMES, NUMBER_FIELDS, clearErrors, clearFieldError, fieldInput, firstInFormOrder, numberValue,
  paintRange, readForm, setField, showFieldError, showFieldErrors, showFormError, showRetryError, syncRangeFromNumber,
} from "./fields.js";
import { checkGuideFields, editing } from "./guidepanel.js";
import { initHires } from "./hires.js";
import { capText } from "./messages.js";
import { closePanel } from "./panel.js";
import { refreshBalance } from "./settings.js";
import { state } from "./state.js";
import { store } from "./store.js";
import {
  enforceSizeLimits, matchShape, parseRatio, ratioPossible, scalePossible, sizeForRatio, sizeForScale,
} from "./sizes.js";
import { renderFitLine } from "./upload.js";

let sizeHintDefault = "";
let seedLocked = false;
let submitting = false;

/** Everything that follows the parameters: the cost, the presets, the seed buttons, the estimate. */
export function onFormChanged() {
  updateCost();
  updatePresetState();
  updateSeedControls();
  renderFitLine();
  scheduleEstimate();
  // The inpaint and outpaint lines and the canvas follow the size (inpaint.js).
  document.dispatchEvent(new CustomEvent("studio:changed"));
}

/* ---------- size: stay inside the largest side and the pixel limit ---------- */

/** What the size hint says by default (the limits of the chosen model, models.js). */
export function setSizeHintDefault(text) {
  const hint = byId("size-hint");
  const showingDefault = hint && !hint.classList.contains("is-note");
  sizeHintDefault = text;
  if (showingDefault) hint.textContent = text;
}

/** The size hint says `message`, or what it says by default ("" or nothing). */
export function setSizeHint(message) {
  const hint = byId("size-hint");
  if (!hint) return;
  hint.textContent = message || sizeHintDefault;
  hint.classList.toggle("is-note", !!message);
}

/** Clamp width and height after `changed` changed; true when a value was changed. */
function applySizeLimits(changed) {
  const result = enforceSizeLimits(changed, { width: numberValue("width"), height: numberValue("height") },
                                   config.size, FIELD_LABELS);
  Object.keys(result.set).forEach((id) => setField(id, result.set[id]));
  if (result.hint !== null) setSizeHint(result.hint);
  return result.touched;
}

function currentArea() {
  const w = numberValue("width");
  const h = numberValue("height");
  return w && h && w > 0 && h > 0 ? w * h : config.rules.width.default * config.rules.height.default;
}

function currentRatio() {
  const w = numberValue("width");
  const h = numberValue("height");
  return w && h && w > 0 && h > 0 ? w / h : 1;
}

function chipRatio(chip) {
  const [a, b] = parseRatio(chip.dataset.size);
  return a / b;
}

/** A ratio chip is off when the limits cannot hold that shape; a scale chip when its area cannot fit. */
function updatePresetState() {
  const lim = config.size;
  const w = numberValue("width");
  const h = numberValue("height");
  // The chosen model's own sizes (models.js): on when the size is exactly that one.
  $all(".size-cards [data-card-size]").forEach((chip) => {
    const active = chip.dataset.cardSize === w + "x" + h;
    chip.classList.toggle("is-active", active);
    chip.setAttribute("aria-pressed", active ? "true" : "false");
  });
  $all(".size-presets [data-size]").forEach((chip) => {
    const [a, b] = parseRatio(chip.dataset.size);
    const possible = ratioPossible(a, b, currentArea(), lim);
    const active = possible && w && h && Math.abs(w / h - chipRatio(chip)) < 0.03;
    chip.classList.toggle("is-active", !!active);
    chip.setAttribute("aria-pressed", active ? "true" : "false");
    chip.disabled = !possible;
    chip.title = possible ? "" : "Not possible within " + lim.max + " px a side";
  });
  $all(".size-presets [data-scale]").forEach((chip) => {
    const s = Number(chip.dataset.scale);
    const possible = scalePossible(s, lim);
    const active = possible && w && h && Math.abs(Math.sqrt(w * h) - s) / s < 0.04;
    chip.classList.toggle("is-active", !!active);
    chip.setAttribute("aria-pressed", active ? "true" : "false");
    chip.disabled = !possible;
    chip.title = possible
      ? "About " + s + " × " + s + " pixels in all"
      : s + " × " + s + " is more than you may ask for (" + lim.max + " px a side, " +
        formatNumber(lim.maxPixels) + " pixels)";
  });
}

/** Set width × height (a preset) with the size hint's note, and follow it. */
export function applySize(size, note) {
  setField("width", size[0]);
  setField("height", size[1]);
  setSizeHint(note || "");
  onFormChanged();
}

function initSize() {
  const lim = config.size;
  const hint = byId("size-hint");
  sizeHintDefault = hint ? hint.textContent : "";

  // Width and height are clamped to the limits once typed (on change, not per keystroke).
  ["width", "height"].forEach((id) => {
    const input = byId(id);
    if (!input) return;
    input.addEventListener("change", () => {
      if (applySizeLimits(id)) onFormChanged();
    });
  });

  $all(".size-presets [data-size]").forEach((chip) => {
    chip.addEventListener("click", () => {
      if (chip.disabled) return;
      const [a, b] = parseRatio(chip.dataset.size);
      applySize(sizeForRatio(a, b, currentArea(), lim));
    });
  });

  $all(".size-presets [data-scale]").forEach((chip) => {
    chip.addEventListener("click", () => {
      const s = Number(chip.dataset.scale);
      if (!scalePossible(s, lim)) {
        setSizeHint(s + " × " + s + " is over your limit: up to " + lim.max + " px a side, " +
                    formatNumber(lim.maxPixels) + " pixels in all.");
        return;
      }
      const fitted = sizeForScale(s, currentRatio(), lim);
      const note = fitted.adjusted
        ? "Made " + fitted.size[0] + " × " + fitted.size[1] + " to stay within " + lim.max + " px a side and " +
          formatNumber(lim.maxPixels) + " pixels."
        : "";
      applySize(fitted.size, note);
    });
  });

  // "Match its shape": the size nearest to the init image's shape, at about the same area.
  const match = byId("init-match");
  if (match) {
    match.addEventListener("click", () => {
      const image = state.initImage;
      const size = image ? matchShape(image.width, image.height, currentArea(), lim) : null;
      if (!size) return;
      applySize(size, "Made " + size[0] + " × " + size[1] + " to match the init image's shape.");
      announce("The size is now " + size[0] + " × " + size[1] + ", the init image's shape.");
    });
  }

  const swap = byId("size-swap");
  if (swap) {
    swap.addEventListener("click", () => {
      const w = byId("width").value;
      setField("width", byId("height").value);
      setField("height", w);
      setSizeHint("");
      onFormChanged();
    });
  }
}

/* ---------- seed: empty means random; the die picks one now; the lock keeps it ---------- */

function updateSeedControls() {
  const clear = byId("seed-clear");
  const seed = byId("seed");
  if (clear) clear.hidden = !seed || seed.value === "";
}

export function renderSeedLock() {
  const lock = byId("seed-lock");
  if (lock) {
    lock.setAttribute("aria-pressed", seedLocked ? "true" : "false");
    lock.classList.toggle("is-on", seedLocked);
    lock.title = seedLocked ? "The seed is kept between images" : "Keep the seed between images";
  }
  const note = byId("seed-lock-state");
  if (note) {
    note.textContent = seedLocked
      ? "Locked: the same seed for the next images."
      : "Unlocked: a new random seed after each image.";
  }
}

/** After a successful submit: unlocked clears the seed to random; locked keeps it (or takes the one picked). */
function seedAfterSubmit(task) {
  const seed = byId("seed");
  if (!seed) return;
  if (!seedLocked) {
    setField("seed", "");
  } else if (seed.value.trim() === "" && task && isNumber(task.seed)) {
    setField("seed", task.seed);
  }
  updateSeedControls();
}

function initSeed() {
  seedLocked = recall("seedLocked") === "1";
  const seed = byId("seed");
  const lock = byId("seed-lock");
  const random = byId("seed-random");
  const clear = byId("seed-clear");
  if (lock) {
    lock.addEventListener("click", () => {
      seedLocked = !seedLocked;
      remember("seedLocked", seedLocked ? "1" : "0");
      renderSeedLock();
    });
  }
  if (random) {
    random.addEventListener("click", () => {
      const buf = new Uint32Array(1);
      window.crypto.getRandomValues(buf);
      setField("seed", buf[0]);
      random.classList.remove("is-rolling");
      void random.offsetWidth;
      random.classList.add("is-rolling");
      updateSeedControls();
    });
  }
  if (clear) {
    clear.addEventListener("click", () => {
      setField("seed", "");
      updateSeedControls();
      if (seed) seed.focus();
    });
  }
  if (seed) seed.addEventListener("input", () => { updateSeedControls(); scheduleEstimate(); });
}

/* ---------- help: a short explanation beside every setting ---------- */

export function setHelp(on) {
  const panel = byId("studio-panel");
  const toggle = byId("help-toggle");
  if (panel) panel.classList.toggle("show-help", on);
  document.body.classList.toggle("show-help", on);
  if (toggle) {
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.title = on ? "Hide the explanations" : "Explain every setting";
  }
  remember("help", on ? "1" : "0");
}

/* ---------- prompt counter ---------- */

export function updatePromptCount() {
  const counter = byId("prompt-count");
  const prompt = byId("prompt");
  if (!counter || !prompt) return;
  const n = prompt.value.length;
  const max = prompt.maxLength;
  counter.textContent = n + " / " + max;
  counter.classList.toggle("is-over", n > max);
}

/* ---------- submit ---------- */

function setSubmitting(on) {
  submitting = on;
  const button = byId("generate");
  if (!button) return;
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
  const label = $(".btn__label", button);
  if (label) label.textContent = on ? "Sending…" : "Generate";
}

function showSubmitError(res) {
  const error = res.error || {};
  const message = error.message || "Something went wrong. Please try again.";
  if (res.status === 422 || res.status === 400) {
    const shown = showFieldErrors(error);
    if (shown.length) {
      // The first field in error as the form lists them (the server's order is not the form's).
      const input = firstInFormOrder(shown.filter((field) => {
        const node = fieldInput(field);
        return node && node.type !== "file";
      }));
      if (input) input.focus();
      return;
    }
    showFormError(message);
  } else if (res.status === 402) {
    showFormError(message || "You do not have enough tokens for this. Lower the steps, size or number of images.");
  } else if (res.status === 429 && error.code === "image_cap") {
    showFormError(capText(message));
  } else if (res.status === 429) {
    showRetryError(message, parseInt(res.retryAfter, 10));
  } else if (res.status === 401) {
    showFormError("You were signed out.", "/login?next=/studio", "Sign in again");
  } else {
    showFormError(message);
  }
}

export function submitForm() {
  if (submitting) return;
  clearErrors();
  if (state.uploading) {
    showFormError("The init image is still uploading; generate again in a moment.");
    return;
  }
  // Inpaint and outpaint say first what the server would refuse (a mask that selects
  // nothing), and so do the guides (a control unit without its picture).
  const problem = (state.initImage && !editing() && state.edit.check ? state.edit.check() : null) || checkGuideFields();
  if (problem) {
    if (showFieldError(problem.field, problem.message)) {
      const input = fieldInput(problem.field);
      if (input) input.focus();
    } else {
      showFormError(problem.message);
    }
    return;
  }
  const payload = readForm({ submit: true });
  setSubmitting(true);
  api("POST", "/api/v1/tasks", payload, { headers: { "Idempotency-Key": newIdempotencyKey() } }).then((res) => {
    setSubmitting(false);
    if (res.ok && res.data && res.data.id) {
      if (config.viewedSession) {
        window.location.href = "/studio"; // new tasks belong to the current session
        return;
      }
      store.upsert(res.data, { top: true });
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

/** Wire the form. */
export function initForm() {
  // Range <-> number pairs: the number input (#steps) is the field, #steps-range follows it.
  $all("input.range[data-sync]").forEach((range) => {
    const id = range.dataset.sync;
    const target = byId(id);
    paintRange(range);
    range.addEventListener("input", () => {
      if (target) target.value = range.value;
      paintRange(range);
      clearFieldError(id);
      if (id === "width" || id === "height") applySizeLimits(id);
      onFormChanged();
    });
  });

  NUMBER_FIELDS.forEach((id) => {
    const input = byId(id);
    if (!input) return;
    input.addEventListener("input", () => {
      syncRangeFromNumber(id);
      onFormChanged();
    });
  });

  initSize();
  initHires(onFormChanged);

  $all("#scheduler, #model, input[name=init_fit]").forEach((input) => {
    input.addEventListener("change", () => onFormChanged());
  });

  initSeed();

  const help = byId("help-toggle");
  if (help) help.addEventListener("click", () => setHelp(help.getAttribute("aria-pressed") !== "true"));

  const prompt = byId("prompt");
  if (prompt) prompt.addEventListener("input", updatePromptCount);

  // Ctrl/Cmd+Enter in a text area generates.
  $all("#generate-form textarea").forEach((area) => {
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submitForm();
      }
    });
  });

  FIELD_NAMES.forEach((field) => {
    const input = byId(field);
    if (!input) return;
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => clearFieldError(field));
  });

  const form = byId("generate-form");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitForm();
    });
  }
}
