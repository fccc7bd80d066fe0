/* Daydream studio — the panel's fields: reading and setting values (each number input
 * #steps has its slider #steps-range), the errors under the fields and above the form,
 * and the task parameters the form holds. */
import { $all, byId, el } from "../../lib/dom.js";
import { cardOf, findModel, paramsForCard } from "./cards.js";
import { config } from "./config.js";
import { modeFields } from "./editing.js";
import { editing, guideFields } from "./guidepanel.js";
import { hiresPayload } from "./hires.js";
import { lorasPayload } from "./loras.js";
import { retryText } from "./messages.js";
import { state } from "./state.js";

/** The number fields that have a slider. */
export const NUMBER_FIELDS = ["width", "height", "steps", "guidance", "samples", "strength", "mask_blur", "inpaint_padding"];
export const FIELD_NAMES = ["prompt", "negative_prompt", "width", "height", "steps", "guidance", "samples", "seed",
                            "scheduler", "model", "strength", "init_image", "init_fit", "board_id", "loras",
                            "mask", "mask_blur", "inpaint_area", "inpaint_padding", "masked_content", "mask_invert",
                            "outpaint", "hires", "control", "references", "edit", "fast"];
/* Where a field's error goes when it is not "{field}-error" next to "#{field}". */
const ERROR_BOX = { init_image: "init-error" };
const ERROR_INPUT = {
  init_image: "init-file", init_fit: "init-fit", loras: "lora-choice", mask: "mask-canvas", inpaint_area: "inpaint-area",
  masked_content: "masked-content", outpaint: "outpaint-left", hires: "hires_enabled",
  control: "control-add", references: "reference-add", edit: "edit-file",
};
export const FIELD_LABELS = {
  prompt: "The prompt", negative_prompt: "The negative prompt", width: "Width", height: "Height",
  steps: "Steps", guidance: "Guidance", samples: "Images", seed: "The seed", scheduler: "The scheduler",
  model: "The model", strength: "Strength", init_image: "The init image", init_fit: "The fit",
  board_id: "The board", loras: "The LoRAs", mask: "The mask", mask_blur: "Mask blur",
  inpaint_area: "Inpaint area", inpaint_padding: "The padding", masked_content: "Masked content",
  mask_invert: "Invert mask", outpaint: "Outpaint:", hires: "Hires fix:",
  control: "Control:", references: "References:", edit: "Edit:", fast: "Fast mode",
};

/** The card of the chosen model (cards.js); every field filled in. */
export function currentCard() {
  const select = byId("model");
  return cardOf(findModel(config.models, select ? select.value : ""));
}

/** The input of a field (#init-file for init_image). */
export function fieldInput(field) { return byId(ERROR_INPUT[field] || field); }

/** Of `fields` (names), the one whose input comes first in the form, or null. */
export function firstInFormOrder(fields) {
  const inputs = fields.map((field) => fieldInput(field)).filter(Boolean);
  inputs.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
  return inputs[0] || null;
}

/** The chosen init_fit ("cover" or "contain"). */
export function initFit() {
  const checked = document.querySelector('input[name="init_fit"]:checked');
  return checked ? checked.value : (config.choice_rules && config.choice_rules.init_fit
    ? config.choice_rules.init_fit.default : "cover");
}

/** The number in #id, or null when it is empty or not a number. */
export function numberValue(id) {
  const input = byId(id);
  if (!input) return null;
  const raw = String(input.value).trim();
  if (raw === "") return null;
  const n = Number(raw);
  return isFinite(n) ? n : null;
}

/** Fill the track of a slider up to its value (--fill). */
export function paintRange(range) {
  const min = Number(range.min) || 0;
  const max = Number(range.max) || 100;
  const value = Number(range.value);
  const pct = max > min ? ((value - min) / (max - min)) * 100 : 0;
  range.style.setProperty("--fill", Math.min(100, Math.max(0, pct)) + "%");
}

/** Move #id-range to the number typed in #id. */
export function syncRangeFromNumber(id) {
  const range = byId(id + "-range");
  const n = numberValue(id);
  if (!range) return;
  if (n !== null) range.value = String(n);
  paintRange(range);
}

/** Set a field (a select only to one of its options), its slider, and clear its error. */
export function setField(id, value) {
  const input = byId(id);
  if (!input) return;
  if (input.tagName === "SELECT") {
    const exists = $all("option", input).some((o) => o.value === String(value));
    if (exists) input.value = String(value);
    if (id === "model") syncModelTitle();
  } else {
    input.value = value === null || value === undefined ? "" : String(value);
  }
  if (NUMBER_FIELDS.indexOf(id) !== -1) syncRangeFromNumber(id);
  clearFieldError(id);
}

/** The model select's title: the chosen model's full name (the select may cut it). */
export function syncModelTitle() {
  const select = byId("model");
  if (!select) return;
  const option = select.options[select.selectedIndex];
  select.title = option ? (option.title || option.textContent.trim()) : "";
}

/* ---------- field errors: <p id="{field}-error"> under each field ---------- */

export function showFieldError(field, message) {
  const box = byId(ERROR_BOX[field] || field + "-error");
  const input = fieldInput(field);
  // A field not on show (the mask of a panel without a start picture): the caller says it above the form.
  if (!box || !input || (box.parentElement && box.parentElement.closest("[hidden]"))) return false;
  box.textContent = message;
  box.hidden = false;
  input.setAttribute("aria-invalid", "true");
  return true;
}

export function clearFieldError(field) {
  const box = byId(ERROR_BOX[field] || field + "-error");
  const input = fieldInput(field);
  if (box) { box.hidden = true; box.textContent = ""; }
  if (input) input.removeAttribute("aria-invalid");
}

export function clearErrors() {
  FIELD_NAMES.forEach(clearFieldError);
  hideFormError();
}

/**
 * Show a 422's field errors next to their fields: every field in error.fields when the
 * server names several, else error.field with error.message. Returns the fields shown.
 */
export function showFieldErrors(error, skip) {
  const shown = [];
  const fields = error && error.fields && typeof error.fields === "object" ? error.fields : null;
  if (fields) {
    Object.keys(fields).forEach((field) => {
      if (skip && skip(field)) return;
      const detail = String(fields[field]);
      // "must be a multiple of 8" reads as "Width must be …"; a whole sentence stays as it is.
      const message = FIELD_LABELS[field] && /^[a-z]/.test(detail) ? FIELD_LABELS[field] + " " + detail : detail;
      if (showFieldError(field, message)) shown.push(field);
    });
  } else if (error && error.field && !(skip && skip(error.field))) {
    if (showFieldError(error.field, error.message || "Check this field.")) shown.push(error.field);
  }
  return shown;
}

/* ---------- the error above the form (#form-error) ---------- */

let retryTimer = null;

export function showFormError(message, linkHref, linkText) {
  const box = byId("form-error");
  if (!box) return;
  window.clearInterval(retryTimer);
  box.textContent = message;
  if (linkHref) {
    box.appendChild(document.createTextNode(" "));
    box.appendChild(el("a", { href: linkHref, text: linkText }));
  }
  box.hidden = false;
}

export function hideFormError() {
  const box = byId("form-error");
  if (!box) return;
  window.clearInterval(retryTimer);
  box.hidden = true;
  box.textContent = "";
}

/** 429: the queue is full (or too many of yours wait). Nothing was charged; count down Retry-After. */
export function showRetryError(message, seconds) {
  const box = byId("form-error");
  if (!box) return;
  let left = seconds > 0 ? Math.ceil(seconds) : 0;
  const render = () => { box.textContent = retryText(message, left); };
  showFormError("");
  render();
  if (left > 0) {
    retryTimer = window.setInterval(() => {
      left -= 1;
      render();
      if (left <= 0) window.clearInterval(retryTimer);
    }, 1000);
  }
}

/* ---------- the task parameters ---------- */

/** The fields of the start picture's mode (inpaint.js keeps state.edit): inpaint's mask
 * and settings (the mask only when submitting: an estimate costs the same without it),
 * outpaint's sides; nothing for image to image. */
function editFields(submit) {
  const edit = state.edit;
  if (!edit || edit.mode === "img2img" || (edit.mode === "inpaint" && !submit)) return {};
  const area = document.querySelector('input[name="inpaint_area"]:checked');
  const content = document.querySelector('input[name="masked_content"]:checked');
  const invert = byId("mask_invert");
  const values = {
    mask_blur: numberValue("mask_blur"), inpaint_area: area ? area.value : "whole",
    inpaint_padding: numberValue("inpaint_padding"), masked_content: content ? content.value : "original",
    mask_invert: !!(invert && invert.checked),
  };
  return modeFields(edit.mode, values, submit && edit.mask ? edit.mask() : null, edit.outpaint);
}

/** The parameters of POST /api/v1/tasks (and /estimate) as the form holds them, as the
 * chosen model takes them (no guidance or negative prompt where it has none), with the
 * chosen LoRAs and guides (guidepanel.js: control units, references; with a model that
 * edits, the pictures to edit instead of a start picture or a hires fix). The cost line
 * and the estimate read the same; options.submit: for the task itself (with the mask). */
export function readForm(options) {
  const prompt = byId("prompt");
  const negative = byId("negative_prompt");
  const seed = byId("seed");
  const payload = {
    prompt: prompt ? prompt.value : "",
    negative_prompt: negative ? negative.value : "",
    steps: numberValue("steps"),
    guidance: numberValue("guidance"),
    width: numberValue("width"),
    height: numberValue("height"),
    samples: numberValue("samples"),
    seed: seed && seed.value.trim() !== "" ? numberValue("seed") : null,
  };
  ["scheduler", "model"].forEach((id) => {
    const select = byId(id);
    if (select && select.value) payload[id] = select.value;
  });
  const board = byId("board_id");
  if (board && board.value) payload.board_id = board.value;
  const fast = byId("fast");
  if (fast) payload.fast = fast.checked; // (kept only where the model lets the user choose: paramsForCard)
  const edit = editing();
  if (state.initImage && !edit) {
    payload.init_image = state.initImage.id;
    const strength = numberValue("strength");
    payload.strength = strength === null ? config.rules.strength.default : strength;
    payload.init_fit = initFit();
    Object.assign(payload, editFields(!!(options && options.submit)));
  }
  payload.loras = lorasPayload(state.loras);
  const hires = edit ? null : hiresPayload(); // (text to image only: hires.js)
  if (hires) payload.hires = hires;
  Object.assign(payload, guideFields());
  return paramsForCard(payload, currentCard());
}
