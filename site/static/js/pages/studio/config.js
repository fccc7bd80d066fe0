/* Daydream studio — the page's configuration: the JSON block #studio-config the server
 * renders (no inline scripts), with the rules narrowed by the user's limits. */
import { byId } from "../../lib/dom.js";
import { narrowRules } from "./rules.js";
import { maxLoras } from "./loras.js";
import { sizeLimits } from "./sizes.js";

function read() {
  const node = byId("studio-config");
  try {
    return JSON.parse(node ? node.textContent : "{}") || {};
  } catch (err) {
    return {};
  }
}

const raw = read();
const limits = raw.limits || {};
const rules = narrowRules(raw.rules, limits);
const size = sizeLimits(rules, limits);

/** ?session=ID shows an earlier session's timeline; "" for the current one. */
export const pageParams = new URLSearchParams(window.location.search);
let viewed = pageParams.get("session") || "";
if (viewed === "current" || viewed === (raw.sessionid || "")) viewed = "";

export const config = Object.assign({}, raw, {
  limits,
  /** {field: {min, max, step, default}}, each max at most the user's limit. */
  rules,
  /** {min, max, step, maxPixels} of width and height with the chosen model: changed in
   * place when the model changes (its card's step and largest side, models.js). */
  size,
  /** The same without a model's card: the rules and the user's limits. */
  baseSize: Object.assign({}, size),
  /** {steps_unit, pixels_unit} of the cost formula. */
  cost: raw.cost || {},
  schedulers: raw.schedulers || {},
  models: raw.models || [],
  modelNames: Object.fromEntries((raw.models || []).map((m) => [m.id, m.name])),
  /** The enabled LoRAs [{id, name, kind, family}] and how many a task may use. */
  loras: raw.loras || [],
  maxLoras: maxLoras(raw.max_loras),
  viewedSession: viewed,
});

export const TASK_LIST_URL = "/api/v1/tasks?session=" + encodeURIComponent(viewed || "current") + "&limit=200";
