/* Daydream studio — the panel's defaults (per model: the demo model starts small and
 * quick) and what the browser keeps of the panel for each user. Pure: no DOM; unit-tested
 * (tests/js/studio-panel.test.js, tests/js/studio-cards.test.js). */
import { keptLoras } from "./loras.js";

/** The fields whose defaults depend on the model (its card). */
export const MODEL_FIELDS = ["width", "height", "steps", "guidance", "scheduler"];

/** The fields of the panel kept in this browser (per user) and restored on load. */
export const KEPT_FIELDS = ["prompt", "negative_prompt", "width", "height", "steps", "guidance", "samples", "seed",
                            "scheduler", "model", "strength", "init_fit", "loras"];

/** The panel's starting values with `modelId`: its own, else the page's defaults. */
export function defaultsFor(modelDefaults, fallback, modelId) {
  return Object.assign({}, fallback || {}, (modelDefaults || {})[modelId] || {});
}

/** After the model changed from one with `before` defaults to one with `after`: the
 * fields to set ({field: value}), those the user left at the old model's default (width,
 * height, steps, guidance and the scheduler). */
export function followModel(values, before, after) {
  const set = {};
  MODEL_FIELDS.forEach((field) => {
    if (after[field] === undefined || after[field] === before[field]) return;
    if (values[field] === before[field]) set[field] = after[field];
  });
  return set;
}

/** The storage key of a user's panel (null when the page does not say who it is). */
export function panelKey(userId) {
  return userId === null || userId === undefined || userId === "" ? null : "studio.panel." + userId;
}

/** What may be put back from a stored panel: the kept fields, as strings or numbers (the
 * LoRAs as a list of {id, name, weight}). */
export function restorable(saved) {
  const out = {};
  if (!saved || typeof saved !== "object") return out;
  KEPT_FIELDS.forEach((field) => {
    const value = saved[field];
    if (field === "loras") {
      if (Array.isArray(value)) out.loras = keptLoras(value);
      return;
    }
    if (typeof value === "string" || (typeof value === "number" && isFinite(value))) out[field] = value;
  });
  return out;
}
