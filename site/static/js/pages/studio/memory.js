/* Daydream studio — what this browser keeps of the studio: each user's panel (the prompt
 * and the settings, restored on load, "Reset to defaults" forgets it), the defaults that
 * follow the chosen model, and the dismissed demo-model notice. */
import { announce, byId } from "../../lib/dom.js";
import { recall, recallJSON, remember, rememberJSON } from "../../lib/storage.js";
import { config, pageParams } from "./config.js";
import { cardDefaults, cardOf, findModel } from "./cards.js";
import { KEPT_FIELDS, followModel, panelKey, restorable } from "./defaults.js";
import { clearErrors, initFit, numberValue, setField } from "./fields.js";
import { onFormChanged, setSizeHint, updatePromptCount } from "./form.js";
import { resetGuides } from "./guidepanel.js";
import { resetEdit } from "./inpaint.js";
import { setLoras } from "./lorapicker.js";
import { appliedModel, applyCard, fitSizeToModel } from "./models.js";
import { state } from "./state.js";
import { clearInitImage, setInitFit } from "./upload.js";

const KEY = panelKey(config.user_id);
const NOTICE_KEY = "studio.demoNoticeDismissed";
let saveTimer = null;

function defaultModelId() {
  const chosen = config.models.find((m) => m.default) || config.models[0];
  return chosen ? chosen.id : "";
}

function modelId() {
  const select = byId("model");
  return select ? select.value : "";
}

/** The panel's defaults with a model (the chosen one unless told): the page's, its card's,
 * the page's table of per-model defaults. */
export function panelDefaults(model) {
  const id = model === undefined || model === null ? modelId() : model;
  const card = cardOf(findModel(config.models, id));
  return cardDefaults(Object.assign(card, { id }), config.model_defaults, config.defaults);
}

function readPanel() {
  const values = {};
  KEPT_FIELDS.forEach((field) => {
    if (field === "init_fit") { values.init_fit = initFit(); return; }
    if (field === "loras") { values.loras = state.loras.map((l) => ({ id: l.id, name: l.name, weight: l.weight })); return; }
    const input = byId(field);
    if (input) values[field] = input.value;
  });
  return values;
}

/** Keep the panel for this user now. */
export function savePanel() {
  window.clearTimeout(saveTimer);
  if (KEY) rememberJSON(KEY, readPanel());
}

function saveSoon() {
  window.clearTimeout(saveTimer);
  saveTimer = window.setTimeout(savePanel, 250);
}

/* The model first (its card decides the schedulers, the limits and the LoRAs offered), then the rest. */
function applyValues(values) {
  if (values.model !== undefined) setField("model", values.model);
  applyCard();
  Object.keys(values).forEach((field) => {
    if (field === "model") return;
    if (field === "init_fit") setInitFit(values[field]);
    else if (field === "loras") setLoras(values.loras);
    else setField(field, values[field]);
  });
}

/** Put back what this browser kept of this user's panel; not when a ?reuse= or ?variant=
 * link brings settings of its own. Returns whether something was put back. */
export function restorePanel() {
  if (!KEY || pageParams.get("reuse") || pageParams.get("variant")) return false;
  const saved = restorable(recallJSON(KEY));
  if (!Object.keys(saved).length) return false;
  applyValues(saved);
  updatePromptCount();
  return true;
}

/** Every field back to its default (the default model's), the init image off; forget the kept panel. */
export function resetPanel() {
  const model = defaultModelId();
  const values = panelDefaults(model);
  clearErrors();
  setField("model", model);
  ["prompt", "negative_prompt", "width", "height", "steps", "guidance", "samples"].forEach((field) => {
    setField(field, values[field] === null || values[field] === undefined ? "" : values[field]);
  });
  applyCard();
  setLoras([]);
  setField("seed", values.seed === null || values.seed === undefined ? "" : values.seed);
  if (values.scheduler || config.default_scheduler) setField("scheduler", values.scheduler || config.default_scheduler);
  if (config.rules.strength) setField("strength", config.rules.strength.default);
  if (config.choice_rules && config.choice_rules.init_fit) setInitFit(config.choice_rules.init_fit.default);
  clearInitImage();
  resetEdit();
  resetGuides();
  setSizeHint("");
  updatePromptCount();
  onFormChanged();
  if (KEY) remember(KEY, null);
  announce("Every setting is back to its default.");
}

/** A model was chosen: its card applies (models.js), and the size, steps, guidance and
 * scheduler the user left at the last model's defaults follow the new one's. */
function onModelChanged() {
  const scheduler = byId("scheduler");
  const values = {
    width: numberValue("width"), height: numberValue("height"), steps: numberValue("steps"),
    guidance: numberValue("guidance"), scheduler: scheduler ? scheduler.value : undefined,
  };
  const before = panelDefaults(appliedModel());
  applyCard();
  const set = followModel(values, before, panelDefaults(modelId()));
  Object.keys(set).forEach((field) => setField(field, set[field]));
  if (set.width !== undefined || set.height !== undefined) fitSizeToModel();
  setSizeHint("");
  onFormChanged();
}

function initDemoNotice() {
  const notice = byId("demo-notice");
  const close = byId("demo-notice-close");
  if (!notice) return;
  if (recall(NOTICE_KEY) === "1") notice.hidden = true;
  if (close) {
    close.addEventListener("click", () => {
      notice.hidden = true;
      remember(NOTICE_KEY, "1");
      announce("The demo model notice is dismissed.");
    });
  }
}

export function initMemory() {
  const form = byId("generate-form");
  if (form) {
    form.addEventListener("input", saveSoon);
    form.addEventListener("change", saveSoon);
  }
  const model = byId("model");
  if (model) model.addEventListener("change", onModelChanged);
  const reset = byId("panel-reset");
  if (reset) reset.addEventListener("click", resetPanel);
  // Programmatic changes (reuse, size presets, the seed after a submit) are kept on leaving.
  window.addEventListener("pagehide", savePanel);
  initDemoNotice();
}
