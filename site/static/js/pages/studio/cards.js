/* Daydream studio — a model's card (studio-config "models": its family, defaults, schedulers,
 * sizes and what it uses) turned into what the panel offers: the size limits and presets,
 * the schedulers, whether guidance and the negative prompt apply. Pure: no DOM; unit-tested
 * (tests/js/studio-cards.test.js). A model listed without a card (an older page) keeps the
 * page's rules: every scheduler, guidance and the negative prompt, no presets of its own. */
import { isNumber } from "../../lib/format.js";
import { fitSize } from "./sizes.js";

/** The model entry of `id` in the page's list, else the default one, else the first (or null). */
export function findModel(models, id) {
  const list = models || [];
  return list.find((m) => m.id === id) || list.find((m) => m.default) || list[0] || null;
}

/** The card of a model entry, every field filled in (those it lacks from the page's rules). */
export function cardOf(model) {
  const m = model || {};
  const step = isNumber(m.size_step) && m.size_step > 0 ? m.size_step : null;
  return {
    id: m.id || "",
    family: m.family || "",
    familyLabel: m.family_label || "",
    sizes: Array.isArray(m.sizes)
      ? m.sizes.filter((s) => Array.isArray(s) && isNumber(s[0]) && isNumber(s[1]) && s[0] > 0 && s[1] > 0)
      : [],
    sizeStep: step,
    maxSide: isNumber(m.max_side) && m.max_side > 0 ? m.max_side : null,
    schedulers: Array.isArray(m.schedulers) ? m.schedulers.slice() : null,
    usesGuidance: m.uses_guidance !== false,
    usesNegativePrompt: m.uses_negative_prompt !== false,
    defaults: m.defaults && typeof m.defaults === "object" ? m.defaults : {},
    // Guides (issue 25): ControlNet units, IP-Adapter references, editing by instruction.
    controlnet: m.controlnet === true,
    ipAdapter: m.ip_adapter === true,
    edits: m.edits === true,
    editOptional: m.edit_optional === true, // (FLUX.2: it also makes pictures from text alone)
    editEach: m.edit_each === true, // (FLUX.2, Qwen-Image-Edit Plus: each picture its own reference)
    // [least, most]: the pixels the pipeline encodes each reference at (the result's held
    // between them); null: the result's (params.reference_pixels).
    editReferencePixels: Array.isArray(m.edit_reference_pixels) && m.edit_reference_pixels.length === 2
      && m.edit_reference_pixels.every((n) => isNumber(n) && n >= 0) ? m.edit_reference_pixels.slice() : null,
    maxReferences: isNumber(m.max_references) && m.max_references > 0 ? Math.floor(m.max_references) : 0,
    // Fast mode (issue 28): what it does for the family, and staff's setting for the model
    // ("off", "on": every task, "optional": the user's choice).
    fast: m.fast && m.fast.available === true ? { method: m.fast.method || "", text: m.fast.text || "" } : null,
    fastMode: m.fast && m.fast.available === true && ["on", "optional"].includes(m.fast_mode) ? m.fast_mode : "off",
  };
}

/** A model's panel defaults: the page's, over them its card's, over those the page's table
 * of per-model defaults (model_defaults). */
export function cardDefaults(card, modelDefaults, fallback) {
  const own = (modelDefaults || {})[card.id] || {};
  return Object.assign({}, fallback || {}, card.defaults || {}, own);
}

function ceilTo(value, step) { return Math.ceil(value / step) * step; }

/**
 * The size limits {min, max, step, maxPixels} with this card: its step (multiples of 16 for
 * FLUX and SD 3), the largest side raised to the card's max_side when that is larger than
 * the user's (never lowered), the user's pixel limit kept. `base`: sizeLimits of the page.
 */
export function cardLimits(base, card) {
  const step = card.sizeStep || base.step;
  const side = Math.max(base.max, card.maxSide || 0);
  const max = Math.floor(side / step) * step;
  const min = Math.min(max, ceilTo(Math.max(base.min, step), step));
  return { min, max, step, maxPixels: base.maxPixels };
}

/** The card's size presets fitted into the limits, each once: [{size: [w, h], wanted: [w, h], adjusted}]. */
export function cardPresets(card, lim) {
  const out = [];
  const seen = {};
  card.sizes.forEach((wanted) => {
    const size = fitSize(wanted[0], wanted[1], lim);
    const key = size[0] + "x" + size[1];
    if (seen[key]) return;
    seen[key] = true;
    out.push({ size, wanted: [wanted[0], wanted[1]], adjusted: size[0] !== wanted[0] || size[1] !== wanted[1] });
  });
  return out;
}

/** The width and height put inside the limits of a (new) card: unchanged when they fit. */
export function fitToLimits(width, height, lim) {
  if (!(isNumber(width) && isNumber(height) && width > 0 && height > 0)) return null;
  return fitSize(Math.max(lim.min, width), Math.max(lim.min, height), lim);
}

/**
 * The schedulers a model offers ({options: [keys], value}): the card's (those the page
 * knows), else all; `current` kept when it is one of them, else the card's default (else
 * the page's, `pageDefault`), else the first.
 */
export function schedulerChoice(card, current, allSchedulers, pageDefault) {
  const all = Object.keys(allSchedulers || {});
  let options = card.schedulers ? card.schedulers.filter((key) => all.indexOf(key) !== -1) : all;
  if (!options.length) options = all;
  const fallback = card.defaults.scheduler || pageDefault;
  let value = current;
  if (options.indexOf(value) === -1) value = options.indexOf(fallback) !== -1 ? fallback : (options[0] || "");
  return { options, value, defaultKey: options.indexOf(fallback) !== -1 ? fallback : null };
}

/** The task parameters as the model takes them: no guidance for a model without it (FLUX.1
 * schnell), no negative prompt for one that ignores it (FLUX). A new object. */
export function paramsForCard(params, card) {
  const out = Object.assign({}, params);
  if (!card.usesGuidance) delete out.guidance;
  if (!card.usesNegativePrompt) delete out.negative_prompt;
  if (card.fastMode !== "optional") delete out.fast; // (on: the server runs it fast anyway)
  return out;
}

/** The fast mode line of the panel: null where the model has none, else {checked, locked, help}. */
export function fastChoice(card, wanted) {
  if (!card.fast || card.fastMode === "off") return null;
  const locked = card.fastMode === "on";
  return {
    checked: locked || !!wanted, locked,
    help: card.fast.method + ": " + card.fast.text + (locked ? " (always on for this model)" : ""),
  };
}

/** The note beside a disabled negative prompt. */
export function negativeNote(card) {
  const name = card.familyLabel ? card.familyLabel.replace(/\.\d+$/, "") : "This model";
  return name + " ignores negative prompts.";
}
