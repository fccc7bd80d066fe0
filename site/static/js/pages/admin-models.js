/* Daydream — the staff models page (/admin/models): the models table, the scan of the
 * models folder, enabling a model and choosing the default one.
 *
 * GET   /api/v1/admin/models        -> {folder, items: [model]}
 * POST  /api/v1/admin/models/scan   -> the same and {skipped: [{path, why}]}, after scanning the
 *                                      models folder (skipped: links out of it, unreadable entries)
 * PATCH /api/v1/admin/models/{id}   {enabled} | {default: true} | {tiers: [tier id] | null} | {fast_mode} -> model
 * model: {id, name, spec, kind: "model" | "lora" | "upscaler" | "controlnet" | "ipadapter", format,
 *         family, family_label, enabled, default, state, error; a model or LoRA: tiers (the plans
 *         that may use it, null: every one); an upscaler: scale, architecture;
 *         a guide (controlnet, ipadapter): architecture}
 * The list also says the plans, {tiers: [{id, name}]}.
 * Models, LoRAs, upscalers and guides are listed in tables of their own; only a model can be the
 * default. One in the error or unsupported state cannot be enabled (the server refuses it
 * too): its checkbox is off until a scan reads it again.
 */
import { api, errorText } from "../lib/api.js";
import { $all, byId, el } from "../lib/dom.js";
import { plural } from "../lib/format.js";
import { showAlert } from "../lib/forms.js";

const FORMAT_LABELS = {
  demo: "Built-in demo",
  folder: "Diffusers folder",
  single_file: "Single file",
  hub: "Hugging Face hub",
};
const STATE_LABELS = { available: "Available", missing: "Missing", error: "Error", unsupported: "Unsupported" };
const UNUSABLE = ["error", "unsupported"];

const table = byId("models-table");
const tbody = byId("models-body");
const emptyNote = byId("models-empty");
const loraTable = byId("loras-table");
const loraBody = byId("loras-body");
const loraEmpty = byId("loras-empty");
const upscalerTable = byId("upscalers-table");
const upscalerBody = byId("upscalers-body");
const upscalerEmpty = byId("upscalers-empty");
const guideTable = byId("guides-table");
const guideBody = byId("guides-body");
const guideEmpty = byId("guides-empty");
const loadingNote = byId("models-loading");
const statusLine = byId("models-status");
const folderPath = byId("models-folder-path");
const scanButton = byId("scan-models");
const skippedBox = byId("models-skipped");
const skippedList = byId("models-skipped-list");
let models = [];
let plans = []; // [{id, name}]: the subscription tiers a model or LoRA may be limited to

const showError = (message) => showAlert("models-error", message);

let statusTimer = null;
function setStatus(text) {
  window.clearTimeout(statusTimer);
  statusLine.textContent = text || "";
  if (text) statusTimer = window.setTimeout(() => { statusLine.textContent = ""; }, 6000);
}

const rowFor = (id) => Array.from(tbody.children)
  .concat(...[loraBody, upscalerBody, guideBody].map((body) => (body ? Array.from(body.children) : [])))
  .find((row) => row.dataset.modelId === id) || null;

const GUIDE_KINDS = ["controlnet", "ipadapter"];

/** "model", "lora", "upscaler", "controlnet" or "ipadapter". Before families a row's kind was its
 *  storage format (now `format`). */
function kindOf(model) {
  if (model.kind === "upscaler" || model.upscaler === true) return "upscaler";
  if (GUIDE_KINDS.includes(model.kind)) return model.kind;
  return model.kind === "lora" || model.lora === true ? "lora" : "model";
}

const isGuide = (model) => GUIDE_KINDS.includes(kindOf(model));
const KIND_LABELS = { model: "Model", lora: "LoRA", upscaler: "Upscaler", controlnet: "ControlNet", ipadapter: "IP-Adapter" };
const ARCHITECTURE_LABELS = {
  controlnet: "ControlNet", union: "ControlNet Union", "ip-adapter": "IP-Adapter", "ip-adapter-plus": "IP-Adapter Plus",
  redux: "FLUX Redux",
};

/** The storage format of a row: "demo", "folder", "single_file" or "hub". */
function formatOf(model) {
  if (model.format) return model.format;
  return FORMAT_LABELS[model.kind] ? model.kind : "";
}

function buildRow(model) {
  const name = model.name || model.id;
  const state = model.state || "available";
  const kind = kindOf(model);
  const format = formatOf(model);
  const isLora = kind === "lora";
  const isUpscaler = kind === "upscaler";
  const guide = isGuide(model);
  // Cannot be offered until a scan reads it again; one already offered can still be withdrawn.
  const locked = UNUSABLE.includes(state) && !model.enabled;
  const errorId = "model-error-" + model.id;
  const enabled = el("input", {
    type: "checkbox", class: "model-enabled", checked: !!model.enabled, disabled: locked,
    "aria-label": "Enabled: " + name + (isLora ? " (LoRA)" : isUpscaler ? " (upscaler)" : guide ? " (" + KIND_LABELS[kind] + ")" : ""),
    "aria-describedby": model.error ? errorId : null,
  });
  enabled.addEventListener("change", () => setEnabled(model.id, enabled));
  let isDefault = null;
  if (kind === "model") {
    isDefault = el("input", {
      type: "radio", name: "default-model", class: "model-default", value: model.id, checked: !!model.default,
      disabled: UNUSABLE.includes(state) && !model.default, "aria-label": "Default model: " + name,
    });
    isDefault.addEventListener("change", () => { if (isDefault.checked) setDefault(model.id, isDefault); });
  }

  return el("tr", {
    class: "model-row" + (kind === "model" ? "" : " model-row--" + (guide ? "guide" : kind)),
    dataset: {
      modelId: model.id, kind, format, family: model.family || "", state,
      enabled: model.enabled ? "true" : "false", default: model.default ? "true" : "false",
    },
  }, [
    el("td", { "data-label": KIND_LABELS[kind], class: "model-cell" }, [
      el("span", { class: "model-name", text: name }),
      el("span", { class: "model-badge model-badge--" + kind, text: KIND_LABELS[kind] }),
      model.default ? el("span", { class: "visually-hidden", text: " (default)" }) : null,
      el("span", { class: "model-spec", text: model.spec || "" }),
    ]),
    guide ? el("td", { "data-label": "Type", class: "model-adapter", text: KIND_LABELS[kind] }) : null,
    isUpscaler
      ? el("td", { "data-label": "Scale", class: "model-scale", text: model.scale ? "×" + model.scale : "—" })
      : el("td", { "data-label": "Family", class: "model-family", text: model.family_label || model.family || "Unknown" }),
    isUpscaler || guide
      ? el("td", {
        "data-label": "Architecture", class: "model-architecture",
        text: (guide ? ARCHITECTURE_LABELS[model.architecture] : "") || model.architecture || "—",
      })
      : null,
    el("td", { "data-label": "Format", class: "model-kind model-format" }, [
      el("span", { text: formatText(model, format) }),
      model.plan ? el("p", { class: "model-memory", dataset: { fits: model.plan.fits ? "true" : "false" },
        title: model.plan.why || "", text: model.plan.label }) : null,
    ]),
    el("td", { "data-label": "State", class: "model-state-cell" }, [
      el("span", { class: "model-state", dataset: { state }, text: STATE_LABELS[state] || state }),
      model.error ? el("p", { class: "model-error", id: errorId, text: model.error }) : null,
    ]),
    kind === "model" || isLora ? plansCell(model, name) : null,
    kind === "model" ? fastCell(model, name) : null,
    el("td", { "data-label": "Enabled", class: "col-center" }, [enabled]),
    kind === "model" ? el("td", { "data-label": "Default", class: "col-center" }, [isDefault]) : null,
  ]);
}

/** The format, with a quantized file's type and size ("Single file · Q4_K GGUF · 6.8 GB"). */
function formatText(model, format) {
  const parts = [FORMAT_LABELS[format] || format || ""];
  if (model.quant) parts.push(/^(Q|IQ|F16|BF16)/.test(model.quant) ? model.quant + " GGUF" : model.quant);
  if (model.size_bytes) parts.push((model.size_bytes / 1024 ** 3).toFixed(1) + " GB");
  return parts.filter(Boolean).join(" · ");
}

const FAST_LABELS = { off: "Off", on: "On", optional: "User's choice" };

/** Fast mode (the family's step cache): a select where the family has one, else a dash. */
function fastCell(model, name) {
  const fast = model.fast || {};
  if (!fast.available) {
    return el("td", { "data-label": "Fast mode", class: "model-fast", title: fast.text || "", text: "—" });
  }
  const select = el("select", {
    class: "model-fast-mode", "aria-label": "Fast mode: " + name, title: fast.method + ": " + fast.text,
  }, Object.keys(FAST_LABELS).map((mode) => el("option", {
    value: mode, text: FAST_LABELS[mode], selected: (model.fast_mode || "off") === mode,
  })));
  select.addEventListener("change", () => setFastMode(model.id, select.value));
  return el("td", { "data-label": "Fast mode", class: "model-fast" }, [select]);
}

function setFastMode(id, fastMode) {
  showError("");
  setRowBusy(id, true);
  api("PATCH", modelPath(id), { fast_mode: fastMode }).then((res) => {
    setRowBusy(id, false);
    if (res.ok && res.data && res.data.id) {
      models = models.map((m) => (m.id === id ? res.data : m));
      setStatus((res.data.name || id) + ", fast mode: " + FAST_LABELS[res.data.fast_mode] + ".");
    } else {
      showError(errorText(res, "Could not change the fast mode of this model."));
    }
    render();
  });
}

/** "Every plan", "Staff only" or the names of the plans that may use it. */
function plansText(tiers) {
  if (!Array.isArray(tiers)) return "Every plan";
  if (!tiers.length) return "Staff only";
  return tiers.map((id) => (plans.find((plan) => plan.id === id) || { name: id }).name).join(", ");
}

/** The Plans cell: what it says, and a disclosure with a box for every plan ("Every plan" on: no limit). */
function plansCell(model, name) {
  const limited = Array.isArray(model.tiers);
  const every = el("input", { type: "checkbox", class: "model-tiers-every", checked: !limited });
  const boxes = plans.map((plan) => el("input", {
    type: "checkbox", class: "model-tier", value: plan.id, disabled: !limited,
    checked: !limited || model.tiers.includes(plan.id),
  }));
  const save = () => setTiers(model.id, every.checked ? null : boxes.filter((box) => box.checked).map((box) => box.value));
  every.addEventListener("change", save);
  boxes.forEach((box) => box.addEventListener("change", save));
  return el("td", { "data-label": "Plans", class: "model-tiers" }, [
    el("details", { class: "model-tiers__pick" }, [
      el("summary", { class: "model-tiers__text", text: plansText(model.tiers), "aria-label": "Plans that may use " + name + ": " + plansText(model.tiers) }),
      el("label", { class: "model-tiers__option" }, [every, el("span", { text: " Every plan" })]),
      ...plans.map((plan, i) => el("label", { class: "model-tiers__option" }, [boxes[i], el("span", { text: " " + plan.name })])),
    ]),
  ]);
}

function setTiers(id, tiers) {
  showError("");
  setRowBusy(id, true);
  api("PATCH", modelPath(id), { tiers }).then((res) => {
    setRowBusy(id, false);
    if (res.ok && res.data && res.data.id) {
      models = models.map((m) => (m.id === id ? res.data : m));
      setStatus((res.data.name || id) + ", plans: " + plansText(res.data.tiers) + ".");
    } else {
      showError(errorText(res, "Could not change the plans of this model."));
    }
    render();
  });
}

function render() {
  const plain = models.filter((m) => kindOf(m) === "model");
  const loras = models.filter((m) => kindOf(m) === "lora");
  tbody.replaceChildren(...plain.map(buildRow));
  emptyNote.hidden = plain.length > 0;
  if (loraBody) loraBody.replaceChildren(...loras.map(buildRow));
  if (loraEmpty) loraEmpty.hidden = loras.length > 0;
  const upscalers = models.filter((m) => kindOf(m) === "upscaler");
  if (upscalerBody) upscalerBody.replaceChildren(...upscalers.map(buildRow));
  if (upscalerEmpty) upscalerEmpty.hidden = upscalers.length > 0;
  if (upscalerTable) upscalerTable.setAttribute("aria-busy", "false");
  const guides = models.filter(isGuide);
  if (guideBody) guideBody.replaceChildren(...guides.map(buildRow));
  if (guideEmpty) guideEmpty.hidden = guides.length > 0;
  if (guideTable) guideTable.setAttribute("aria-busy", "false");
  loadingNote.hidden = true;
  table.setAttribute("aria-busy", "false");
  if (loraTable) loraTable.setAttribute("aria-busy", "false");
}

/** What the last scan did not read (links out of the models folder, unreadable entries). */
function showSkipped(skipped) {
  if (!skippedBox) return;
  const items = Array.isArray(skipped) ? skipped : [];
  skippedList.replaceChildren(...items.map((item) => el("li", { class: "models-skipped__item" }, [
    el("code", { text: item.path }), el("span", { text: " — " + item.why }),
  ])));
  skippedBox.hidden = items.length === 0;
}

function takeList(data) {
  if (!data) return;
  if (Array.isArray(data.skipped)) showSkipped(data.skipped);
  if (Array.isArray(data.tiers)) plans = data.tiers.slice();
  if (Array.isArray(data.items)) models = data.items.slice();
  if (typeof data.folder === "string") folderPath.textContent = data.folder || "(not set)";
  render();
}

function load() {
  return api("GET", "/api/v1/admin/models").then((res) => {
    if (res.ok) {
      showError("");
      takeList(res.data);
    } else {
      loadingNote.hidden = true;
      showError(errorText(res, "Could not load the models."));
    }
    return res;
  });
}

function setRowBusy(id, busy) {
  const row = rowFor(id);
  if (!row) return;
  row.classList.toggle("is-saving", busy);
  $all("input", row).forEach((input) => { input.disabled = busy; });
}

const modelPath = (id) => "/api/v1/admin/models/" + encodeURIComponent(id);

function setEnabled(id, input) {
  const value = input.checked;
  showError("");
  setRowBusy(id, true);
  api("PATCH", modelPath(id), { enabled: value }).then((res) => {
    setRowBusy(id, false);
    if (res.ok && res.data && res.data.id) {
      models = models.map((m) => (m.id === id ? res.data : m));
      render();
      const kind = kindOf(res.data);
      const what = (res.data.name || id) + (kind === "model" ? "" : " (" + KIND_LABELS[kind] + ")");
      const where = kind === "upscaler" ? " is offered for upscaling."
        : isGuide(res.data) ? " is offered as a guide for " + (res.data.family_label || res.data.family) + " models."
          : " is offered in the studio.";
      setStatus(what + (res.data.enabled ? where : " is no longer offered."));
    } else {
      input.checked = !value;
      showError(errorText(res, "Could not change this model."));
    }
  });
}

function setDefault(id, input) {
  showError("");
  setRowBusy(id, true);
  api("PATCH", modelPath(id), { default: true }).then((res) => {
    setRowBusy(id, false);
    if (res.ok && res.data && res.data.id) {
      // Only one default: the others lost it on the server; reload to show the truth.
      models = models.map((m) => (m.id === id ? res.data : Object.assign({}, m, { default: false })));
      render();
      setStatus((res.data.name || id) + " is now the default model.");
      load();
    } else {
      input.checked = false;
      render(); // the previous default's radio comes back
      showError(errorText(res, "Could not make this the default model."));
    }
  });
}

/** "Scan done: 3 models, 2 LoRAs, 1 new (enable them to offer them), 1 missing." */
function scanSummary(before, skipped) {
  const added = models.filter((m) => !before.has(m.id)).length;
  const missing = models.filter((m) => m.state === "missing").length;
  const loras = models.filter((m) => kindOf(m) === "lora").length;
  const upscalers = models.filter((m) => kindOf(m) === "upscaler").length;
  const guides = models.filter(isGuide).length;
  const parts = ["Scan done: " + plural(models.length - loras - upscalers - guides, "model", "models")];
  if (loras) parts.push(plural(loras, "LoRA", "LoRAs"));
  if (upscalers) parts.push(plural(upscalers, "upscaler", "upscalers"));
  if (guides) parts.push(plural(guides, "guide", "guides"));
  parts.push(added ? added + " new (enable them to offer them)" : "nothing new");
  if (missing) parts.push(missing + " missing");
  if (skipped) parts.push(skipped + " not read (see below)");
  return parts.join(", ") + ".";
}

scanButton.addEventListener("click", () => {
  const before = new Set(models.map((m) => m.id));
  const label = scanButton.querySelector(".btn__label");
  scanButton.disabled = true;
  scanButton.setAttribute("aria-busy", "true");
  label.textContent = "Scanning…";
  showError("");
  api("POST", "/api/v1/admin/models/scan").then((res) => {
    scanButton.disabled = false;
    scanButton.setAttribute("aria-busy", "false");
    label.textContent = "Scan models folder";
    if (!res.ok) { showError(errorText(res, "The scan failed.")); return; }
    takeList(res.data);
    setStatus(scanSummary(before, (res.data && Array.isArray(res.data.skipped)) ? res.data.skipped.length : 0));
  });
});

// A model job (an install, a conversion, a merge) that made a model: list it (admin-modeljobs.js).
document.addEventListener("daydream:models-changed", () => load());
load();
