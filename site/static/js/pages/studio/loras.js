/* Daydream studio — the LoRAs of the next task: which enabled LoRAs fit the chosen model
 * (its family), adding and removing them (at most max_loras), their weights (-2..2, steps of
 * 0.05), what is kept of them and what a task brings back, and the <lora:name:0.8> tags
 * typed into the prompt. Pure: no DOM; unit-tested (tests/js/studio-loras.test.js).
 *   chosen = [{id, name, weight}]   in the order they were added */
import { isNumber } from "../../lib/format.js";

export const WEIGHT = { min: -2, max: 2, step: 0.05, default: 0.8 };
export const DEFAULT_MAX_LORAS = 4;

/** The page's max_loras, else 4. */
export function maxLoras(value) {
  return isNumber(value) && value >= 0 ? Math.floor(value) : DEFAULT_MAX_LORAS;
}

/** The enabled LoRAs (studio-config "loras") of a family (none for a model of no known family). */
export function lorasFor(loras, family) {
  if (!family) return [];
  return (loras || []).filter((l) => l && l.id && l.kind !== "model" && l.family === family);
}

/** A weight inside -2..2 on the 0.05 grid; the default for something that is not a number. */
export function clampWeight(value) {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (!isNumber(n)) return WEIGHT.default;
  const clamped = Math.min(WEIGHT.max, Math.max(WEIGHT.min, n));
  const snapped = Math.round(clamped / WEIGHT.step) * WEIGHT.step;
  return Math.round(snapped * 100) / 100 || 0; // no -0
}

/** The LoRAs of `available` that can still be added (not chosen yet). */
export function addable(chosen, available) {
  const ids = new Set((chosen || []).map((l) => l.id));
  return (available || []).filter((l) => !ids.has(l.id));
}

/** Add a LoRA: {list, error}; error (and the list unchanged) when it is unknown, already
 * there, or the list is full. */
export function addLora(chosen, id, available, max, weight) {
  const list = (chosen || []).slice();
  const lora = (available || []).find((l) => l.id === id);
  if (!lora) return { list, error: "Choose a LoRA first." };
  if (list.some((l) => l.id === id)) return { list, error: lora.name + " is already added." };
  if (list.length >= max) return { list, error: "At most " + max + " LoRA" + (max === 1 ? "" : "s") + " a task." };
  list.push({ id: lora.id, name: lora.name || lora.id, weight: clampWeight(weight === undefined ? WEIGHT.default : weight) });
  return { list, error: null };
}

export function removeLora(chosen, id) {
  return (chosen || []).filter((l) => l.id !== id);
}

export function setWeight(chosen, id, weight) {
  return (chosen || []).map((l) => (l.id === id ? Object.assign({}, l, { weight: clampWeight(weight) }) : l));
}

/**
 * The chosen LoRAs that `available` (the new model's family) still offers, at most max:
 * {list, dropped: [names of those it does not offer], over: [names past the max]}. Also how a kept panel or a task's LoRAs ({id, name?, weight})
 * come back: unknown ids and those of another family are dropped.
 */
export function keepAvailable(chosen, available, max) {
  const byId = {};
  (available || []).forEach((l) => { byId[l.id] = l; });
  const list = [];
  const dropped = [];
  const over = [];
  const seen = new Set();
  (Array.isArray(chosen) ? chosen : []).forEach((item) => {
    if (!item || typeof item !== "object" || typeof item.id !== "string") return;
    if (seen.has(item.id)) return;
    seen.add(item.id);
    const lora = byId[item.id];
    if (!lora) { dropped.push(item.name || item.id); return; }
    if (list.length >= max) { over.push(lora.name || lora.id); return; }
    list.push({ id: lora.id, name: lora.name || lora.id, weight: clampWeight(item.weight) });
  });
  return { list, dropped, over };
}

/** The note after LoRAs were dropped (or "" when none were). */
export function droppedNote(dropped, modelName) {
  if (!dropped || !dropped.length) return "";
  const names = dropped.join(", ");
  return (dropped.length === 1 ? names + " was" : names + " were") + " removed: " +
    (dropped.length === 1 ? "it does" : "they do") + " not fit " + (modelName || "this model") + ".";
}

/** The submit's loras: [{id, weight}]. */
export function lorasPayload(chosen) {
  return (chosen || []).map((l) => ({ id: l.id, weight: clampWeight(l.weight) }));
}

/** What the browser keeps of the chosen LoRAs: [{id, name, weight}] (plain values only). */
export function keptLoras(value) {
  if (!Array.isArray(value)) return [];
  return value
    .filter((l) => l && typeof l === "object" && typeof l.id === "string" && l.id)
    .map((l) => ({ id: l.id, name: typeof l.name === "string" ? l.name : l.id, weight: clampWeight(l.weight) }));
}

/** The words a task card shows for its LoRAs: "Detail (0.8), Ink (-0.5)". */
export function lorasText(loras) {
  return keptLoras(loras).map((l) => l.name + " (" + l.weight + ")").join(", ");
}

/* ---------- <lora:name:weight> in the prompt ----------
 * The server applies these tags on every route (services/generation/loratags.py); the studio
 * reads them the same way to show a chip for each as it is typed: a tag names a LoRA by its
 * id or name (any case, with or without .safetensors / .ckpt), no weight means 1, a LoRA
 * named twice counts once (the first tag), and a tag's weight wins over the same LoRA
 * chosen with the picker. The tag stays in the prompt as typed; the server takes it out of
 * the text the model reads. */
const TAG = /<\s*(lora|lyco|hypernet)\s*:([^:>]*)(?::([^:>]*))?(?::[^>]*)?>/gi;
const EXTENSIONS = [".safetensors", ".ckpt"];

function bareName(name) {
  let wanted = String(name).trim().toLowerCase();
  EXTENSIONS.forEach((ext) => { if (wanted.endsWith(ext)) wanted = wanted.slice(0, -ext.length); });
  return wanted;
}

/** The prompt's LoRA tags matched to `available` (the chosen model's family):
 * {list: [{id, name, weight, tag}], problems: [what the server would refuse, in words]}. */
export function promptLoras(prompt, available) {
  const list = [];
  const problems = [];
  if (typeof prompt !== "string") return { list, problems };
  for (const match of prompt.matchAll(TAG)) {
    const kind = match[1].toLowerCase();
    const name = match[2].trim();
    const text = match[0];
    if (kind === "hypernet") { problems.push(text + ": hypernetworks are not supported; use a LoRA."); continue; }
    const wanted = bareName(name);
    const lora = wanted ? (available || []).find((l) => l && (String(l.id).toLowerCase() === wanted ||
      String(l.name || "").toLowerCase() === wanted)) : null;
    if (!lora) { problems.push("<lora:" + name + "> is not a LoRA for this model."); continue; }
    const given = match[3];
    const weight = given === undefined || given.trim() === "" ? 1 : Number(given);
    if (!isNumber(weight)) { problems.push(text + ": the weight must be a number."); continue; }
    if (weight < WEIGHT.min || weight > WEIGHT.max) {
      problems.push(text + ": the weight must be from " + WEIGHT.min + " to " + WEIGHT.max + ".");
      continue;
    }
    if (list.some((l) => l.id === lora.id)) continue;
    list.push({ id: lora.id, name: lora.name || lora.id, weight, tag: text });
  }
  return { list, problems };
}

/** What the LoRA list shows: {picked: the chosen LoRAs no tag names, tagged: the prompt's,
 * count: how many the task will take, over: whether that is more than max}. */
export function shownLoras(chosen, tagged, max) {
  const ids = new Set((tagged || []).map((l) => l.id));
  const picked = (chosen || []).filter((l) => !ids.has(l.id));
  const count = picked.length + (tagged || []).length;
  return { picked, tagged: tagged || [], count, over: count > max };
}
