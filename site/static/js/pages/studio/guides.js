/* Daydream studio — guides, the pure part: Control units (ControlNet: a picture, its
 * preprocessor, a ControlNet of the model's family, weight, the steps it applies to, the
 * control and resize modes), References (IP-Adapter: a picture and its weight) and the
 * pictures of an Edit; what each sends (docs/API.md, "Guides and editing"), what a task
 * brings back (Reuse) and what they add to the cost (params.guide_cost); the words a card
 * shows for them are lib/guidewords.js's. No DOM; unit-tested (tests/js/studio-guides.test.js).
 *
 *   unit      = {key, source: "upload" | "draw", image: {id?, data?, thumbnail_url?} | null,
 *                preprocessor, model, weight, start, end, control_mode, resize_mode,
 *                processor_res, threshold_a, threshold_b, pixel_perfect}
 *   reference = {key, image: {id?, data?, thumbnail_url?} | null, model, weight}
 * An image is an id of the user's (a result, or what a task brings back) or a data URL
 * (a file chosen or a scribble drawn here), sent as it is. */
import { isNumber } from "../../lib/format.js";
import { CONTROL_MODES } from "../../lib/guidewords.js";

export const WEIGHT = { min: 0, max: 2, step: 0.05, default: 1 };
export const REFERENCE_WEIGHT = { min: 0, max: 2, step: 0.05, default: 0.6 };
export const RANGE = { min: 0, max: 1, step: 0.05 };
export const PROCESSOR_RES = { min: 64, max: 2048, step: 8, default: 512 };
export { CONTROL_MODES };
export const RESIZE_MODES = [["crop", "Crop and resize"], ["resize", "Just resize"], ["fill", "Resize and fill"]];
export const DEFAULT_MAX_CONTROL = 3;
export const DEFAULT_MAX_REFERENCES = 2;

let keys = 0;
function nextKey(prefix) { keys += 1; return prefix + keys; }

function toNumber(value) {
  return typeof value === "string" && value.trim() !== "" ? Number(value) : value;
}

/** A number inside {min, max} on its step (the default for what is not a number). */
export function clampTo(rule, value, fallback) {
  const n = toNumber(value);
  if (!isNumber(n)) return fallback === undefined ? rule.default : fallback;
  const clamped = Math.min(rule.max, Math.max(rule.min, n));
  const snapped = Math.round((clamped - rule.min) / rule.step) * rule.step + rule.min;
  return Math.round(snapped * 1000) / 1000 || 0; // no -0, no 0.30000000000000004
}

/** A count from the page (max_control, max_references), else `fallback`. */
export function countOr(value, fallback) {
  return isNumber(value) && value >= 0 ? Math.floor(value) : fallback;
}

/** The enabled guide models (studio-config "guides": [{id, name, family, adapter,
 * architecture, control_modes}]) of `adapter` ("controlnet" or "ipadapter") for a family. */
export function guidesFor(guides, adapter, family) {
  if (!family) return [];
  return (guides || []).filter((g) => g && g.id && g.adapter === adapter && g.family === family);
}

/* Families whose ControlNet Union takes all of a task's units in one model (the server's
 * guides.FUSED_UNIONS: diffusers' SDXL Union pipelines): every unit of such a task names that
 * Union; one beside another ControlNet, or two Unions, is refused (a 422 naming control). */
export const FUSED_UNION_FAMILIES = ["sdxl"];

/** Whether a guide model (a studio-config "guides" item) is such a Union. */
export function isFusedUnion(guide) {
  return !!guide && guide.architecture === "union" && FUSED_UNION_FAMILIES.indexOf(guide.family) !== -1;
}

/**
 * The ControlNets unit `key` may choose, of its family's (`list`: guidesFor's), so that the
 * units never mix a Union that takes every unit with another ControlNet: {choices, note}.
 * The first unit chooses any; when its ControlNet is such a Union the other units are
 * offered that Union only, else any but such a Union. A unit not in `units` yet (being
 * added) counts as another unit. `note`: the rule in words where it narrows the choice.
 */
export function unitControlnets(list, units, key) {
  const all = (list || []).filter((g) => g && g.id);
  const rows = units || [];
  const first = rows.length && rows[0] && rows[0].key !== key ? rows[0] : null;
  const lead = first ? all.find((g) => g.id === first.model) : null;
  if (!lead) return { choices: all, note: "" };
  if (isFusedUnion(lead)) {
    return { choices: [lead], note: (lead.name || lead.id) + " (Control 1) is a ControlNet Union: it takes every unit of the task." };
  }
  const choices = all.filter((g) => !isFusedUnion(g));
  return { choices, note: choices.length < all.length ? "A ControlNet Union takes every unit of a task: choose it on Control 1." : "" };
}

/* The mode a unit on an SDXL Union takes when its preprocessor has none (the server's
 * preprocess.SDXL_UNION_LINES: a map drawn or made elsewhere reads as lines). */
export const SDXL_UNION_LINES = 3;

function modeLabel(id) {
  const found = CONTROL_MODES.find(([key]) => key === id);
  return found ? found[1] : String(id);
}

/**
 * What the server refuses (a 422 naming control) about units on a ControlNet Union, said
 * before sending: a message, or null. `guides`: the family's ControlNets (guidesFor's);
 * `preprocessors`: the server's list. A unit's preprocessor picks its mode on a Union (on an
 * SDXL one its sdxl_union_type, else SDXL_UNION_LINES; on a FLUX one its union_type, else 0),
 * which the Union must have (its control_modes, where known: guides._missing_mode). The
 * units on an SDXL Union may pick different modes (one map each), but that one model runs
 * them with one control mode, Balanced or another (guides._fused_union_refusal).
 */
export function unionProblem(units, guides, preprocessors) {
  const rows = (units || []).filter(Boolean);
  const guideOf = (u) => (guides || []).find((g) => g && g.id === u.model) || null;
  for (let i = 0; i < rows.length; i++) {
    const g = guideOf(rows[i]);
    if (!g || g.architecture !== "union" || !isNumber(g.control_modes) || g.control_modes <= 0) continue;
    const p = preprocessorOf(preprocessors, rows[i].preprocessor) || {};
    const sdxl = g.family !== "flux";
    const own = sdxl ? p.sdxl_union_type : p.union_type;
    const mode = isNumber(own) ? own : sdxl ? SDXL_UNION_LINES : 0;
    if (mode >= g.control_modes) {
      return "Control " + (i + 1) + ": " + (p.label || rows[i].preprocessor) + " needs mode " + mode + " of a ControlNet Union; " +
        (g.name || g.id) + " has " + g.control_modes + " modes. Choose another preprocessor or ControlNet.";
    }
  }
  const lead = rows.findIndex((u) => isFusedUnion(guideOf(u)));
  if (lead === -1) return null;
  const odd = rows.findIndex((u) => u.model === rows[lead].model && u.control_mode !== rows[lead].control_mode);
  if (odd === -1) return null;
  return "The units on " + (guideOf(rows[lead]).name || rows[lead].model) + " (a ControlNet Union, one model for all of them) " +
    "share one control mode: Control " + (odd + 1) + " is \u201c" + modeLabel(rows[odd].control_mode) + "\u201d, Control " +
    (lead + 1) + " \u201c" + modeLabel(rows[lead].control_mode) + "\u201d.";
}

/** What the chosen model's card offers: {control, references, edit, editOptional, editEach,
 * editReferencePixels, maxEdit} (cards.js's card; a card that does not say offers no guide). */
export function offers(card) {
  const c = card || {};
  return {
    control: !!c.controlnet, references: !!c.ipAdapter, edit: !!c.edits, editOptional: !!c.edits && !!c.editOptional,
    editEach: !!c.edits && !!c.editEach, editReferencePixels: (c.edits && c.editReferencePixels) || null,
    maxEdit: c.edits ? c.maxReferences || 1 : 0,
  };
}

/** The preprocessor of `id` in the server's list (GET /api/v1/control/preprocessors), or null. */
export function preprocessorOf(preprocessors, id) {
  return (preprocessors || []).find((p) => p && p.id === id) || null;
}

/** The preprocessors to offer: the server's list, those that need the task's mask only
 * while the panel inpaints. */
export function offeredPreprocessors(preprocessors, inpainting) {
  return (preprocessors || []).filter((p) => p && p.id && (!p.needs_mask || inpainting));
}

/** The preprocessor a new unit starts with: a drawing is a scribble; a picture's edges
 * (canny) else; else the first offered. */
export function defaultPreprocessor(preprocessors, source) {
  const ids = (preprocessors || []).map((p) => p.id);
  const wanted = source === "draw" ? ["scribble", "lineart", "none"] : ["canny", "none"];
  return wanted.find((id) => ids.indexOf(id) !== -1) || ids[0] || "none";
}

/** A threshold's value: the number given inside its rule ({min, max, step, default}), else its default. */
export function thresholdValue(rule, value) {
  if (!rule) return null;
  const n = toNumber(value);
  if (!isNumber(n)) return isNumber(rule.default) ? rule.default : null;
  return Math.min(rule.max, Math.max(rule.min, n));
}

/** The thresholds of a preprocessor: {a: rule | null, b: rule | null}. */
export function thresholdsOf(preprocessor) {
  const t = (preprocessor && preprocessor.thresholds) || {};
  return { a: t.a || null, b: t.b || null };
}

/** A new Control unit. */
export function newUnit(options) {
  const o = options || {};
  return {
    key: nextKey("control-"), source: o.source === "draw" ? "draw" : "upload", image: o.image || null,
    preprocessor: o.preprocessor || "none", model: o.model || "", weight: WEIGHT.default, start: 0, end: 1,
    control_mode: "balanced", resize_mode: "crop", processor_res: PROCESSOR_RES.default,
    threshold_a: null, threshold_b: null, pixel_perfect: false,
  };
}

/** A new Reference. */
export function newReference(options) {
  const o = options || {};
  return { key: nextKey("reference-"), image: o.image || null, model: o.model || "", weight: REFERENCE_WEIGHT.default };
}

/** A unit with `change` applied, each value kept inside its rule; start stays ≤ end. */
export function changeUnit(unit, change) {
  const u = Object.assign({}, unit, change || {});
  u.weight = clampTo(WEIGHT, u.weight);
  u.start = clampTo(Object.assign({ default: 0 }, RANGE), u.start);
  u.end = clampTo(Object.assign({ default: 1 }, RANGE), u.end);
  if (u.start > u.end) {
    if (change && "end" in change && !("start" in change)) u.start = u.end;
    else u.end = u.start;
  }
  u.processor_res = clampTo(PROCESSOR_RES, u.processor_res);
  if (!CONTROL_MODES.some(([id]) => id === u.control_mode)) u.control_mode = "balanced";
  if (!RESIZE_MODES.some(([id]) => id === u.resize_mode)) u.resize_mode = "crop";
  u.pixel_perfect = !!u.pixel_perfect;
  return u;
}

/** A reference with `change` applied, its weight inside 0..2. */
export function changeReference(reference, change) {
  const r = Object.assign({}, reference, change || {});
  r.weight = clampTo(REFERENCE_WEIGHT, r.weight);
  return r;
}

/** What an image sends: its id, else its data URL, else null. */
export function imageValue(image) {
  if (!image) return null;
  if (typeof image === "string") return image || null;
  return image.id || image.data || null;
}

/** One unit as POST /api/v1/tasks takes it (image: what `imageOf(unit)` gives, the
 * scribble's drawing read when sent). Thresholds only where the preprocessor has them. */
export function unitPayload(unit, image, preprocessor) {
  const t = thresholdsOf(preprocessor);
  return {
    image, preprocessor: unit.preprocessor, model: unit.model, weight: unit.weight, start: unit.start, end: unit.end,
    control_mode: unit.control_mode, resize_mode: unit.resize_mode, processor_res: unit.processor_res,
    threshold_a: t.a ? thresholdValue(t.a, unit.threshold_a) : null,
    threshold_b: t.b ? thresholdValue(t.b, unit.threshold_b) : null,
    pixel_perfect: !!unit.pixel_perfect,
  };
}

/**
 * The task's guide fields: {control?, references?, edit?}. units, references: as above;
 * imageOf(item) → what its image sends (null: none yet: left out, `check` says so at
 * submit); preprocessors: the server's list; editImages: the pictures of an edit (ids or
 * data URLs), sent when the model edits. Only what the card offers is sent.
 */
export function guidesPayload({ units, references, editImages, offered, imageOf, preprocessors }) {
  const out = {};
  const of = imageOf || ((item) => imageValue(item.image));
  const on = offered || {};
  if (on.edit) {
    const images = (editImages || []).map(imageValue).filter(Boolean);
    if (images.length) out.edit = { images };
    return out; // an edit takes no control and no reference
  }
  if (on.control) {
    const control = (units || []).map((u) => [u, of(u)]).filter(([, image]) => image)
      .map(([u, image]) => unitPayload(u, image, preprocessorOf(preprocessors, u.preprocessor)));
    if (control.length) out.control = control;
  }
  if (on.references) {
    const refs = (references || []).map((r) => [r, of(r)]).filter(([, image]) => image)
      .map(([r, image]) => ({ image, weight: r.weight, model: r.model }));
    if (refs.length) out.references = refs;
  }
  return out;
}

/** What the server would refuse, said before sending: {field, message} or null.
 * hasImage(item) says whether a unit or reference has its picture (a scribble: drawn on);
 * guides, preprocessors: the family's ControlNets and the server's preprocessors, for what
 * a ControlNet Union refuses (unionProblem). */
export function checkGuides({ units, references, editImages, offered, hasImage, guides, preprocessors }) {
  const on = offered || {};
  const has = hasImage || ((item) => !!imageValue(item.image));
  if (on.edit) {
    if (!(editImages || []).length && !on.editOptional) return { field: "edit", message: "Choose the picture to edit (Add a picture), or another model." };
    return null;
  }
  const list = on.control ? units || [] : [];
  for (let i = 0; i < list.length; i++) {
    const u = list[i];
    const name = "Control " + (i + 1);
    if (!has(u)) {
      return { field: "control", message: name + (u.source === "draw" ? " is blank: draw on it, or remove it." : " has no picture: choose one, or remove it.") };
    }
    if (!u.model) return { field: "control", message: name + ": no ControlNet fits this model." };
  }
  const union = unionProblem(list, guides, preprocessors);
  if (union) return { field: "control", message: union };
  const refs = on.references ? references || [] : [];
  for (let i = 0; i < refs.length; i++) {
    if (!has(refs[i])) return { field: "references", message: "Reference " + (i + 1) + " has no picture: choose one, or remove it." };
    if (!refs[i].model) return { field: "references", message: "Reference " + (i + 1) + ": no IP-Adapter fits this model." };
  }
  return null;
}

/**
 * What the guides make the task cost, from the cost without them (`base`: the formula's,
 * hires included): the server's params.guide_cost added to it. Each ControlNet unit adds
 * ceil(base / 2) (it runs beside the denoiser at every step), each reference `samples`
 * tokens (an image encoder pass), and an edit (`edit`: its number of pictures; true: one)
 * its reference's tokens (they join the image's at every step): once for a model that
 * stitches its pictures into one reference, once for each picture for one whose card says
 * edit_each (`editEach`: FLUX.2, Qwen-Image-Edit Plus). A reference costs `editCost`
 * where its pipeline encodes it at another size than the result's (cost.js's
 * referenceCost), else the base again. null while the base is unknown.
 */
export function guidedCost(base, { control = 0, references = 0, samples = 1, edit = 0, editEach = false,
  editCost = null } = {}) {
  if (!isNumber(base)) return null;
  const pictures = Number(edit) || 0;
  const edits = editEach ? pictures : Math.min(pictures, 1);
  const each = isNumber(editCost) ? editCost : base;
  return base + control * Math.ceil(base / 2) + references * (Math.floor(samples) || 1) + edits * each;
}

/** How many units, references and pictures to edit a payload has, for guidedCost. */
export function payloadCounts(payload) {
  const p = payload || {};
  return {
    control: Array.isArray(p.control) ? p.control.length : 0,
    references: Array.isArray(p.references) ? p.references.length : 0,
    edit: p.edit && Array.isArray(p.edit.images) ? p.edit.images.length : 0,
  };
}

function imageFromId(id) {
  return id ? { id, thumbnail_url: "/api/v1/images/" + encodeURIComponent(id) + "/thumbnail" } : null;
}

/**
 * A task's units and references (task.control, task.references) back in the panel, for the
 * chosen model's family: {units, references, dropped: [what the family does not offer, in
 * words]}. A unit's model that is no longer enabled takes the family's first ControlNet.
 */
export function restoreGuides(task, { guides, family, maxControl, maxReferences } = {}) {
  const controlnets = guidesFor(guides, "controlnet", family);
  const adapters = guidesFor(guides, "ipadapter", family);
  const dropped = [];
  const units = [];
  (Array.isArray(task && task.control) ? task.control : []).forEach((raw, i) => {
    if (!raw || typeof raw !== "object") return;
    if (!controlnets.length || units.length >= countOr(maxControl, DEFAULT_MAX_CONTROL)) {
      dropped.push("control " + (i + 1));
      return;
    }
    const model = controlnets.some((g) => g.id === raw.model) ? raw.model : controlnets[0].id;
    units.push(changeUnit(newUnit({ image: imageFromId(raw.image), preprocessor: raw.preprocessor, model }), {
      weight: raw.weight, start: raw.start, end: raw.end, control_mode: raw.control_mode,
      resize_mode: raw.resize_mode, processor_res: raw.processor_res, threshold_a: raw.threshold_a,
      threshold_b: raw.threshold_b, pixel_perfect: raw.pixel_perfect,
    }));
  });
  const references = [];
  (Array.isArray(task && task.references) ? task.references : []).forEach((raw, i) => {
    if (!raw || typeof raw !== "object") return;
    if (!adapters.length || references.length >= countOr(maxReferences, DEFAULT_MAX_REFERENCES)) {
      dropped.push("reference " + (i + 1));
      return;
    }
    const model = adapters.some((g) => g.id === raw.model) ? raw.model : adapters[0].id;
    references.push(changeReference(newReference({ image: imageFromId(raw.image), model }), { weight: raw.weight }));
  });
  return { units, references, dropped };
}

/** The pictures of a task's edit, as the panel keeps them ([{id, thumbnail_url}]). */
export function restoreEditImages(task) {
  const images = task && task.edit && Array.isArray(task.edit.images) ? task.edit.images : [];
  return images.filter((id) => typeof id === "string" && id).map(imageFromId);
}
