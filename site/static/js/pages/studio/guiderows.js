/* Daydream studio — the rows of the Guides section (guidepanel.js): one Control unit (its
 * picture chosen, or a scribble drawn on its canvas, scribble.js; its preprocessor and
 * thresholds, ControlNet, weight, step range, control and resize modes, pixel perfect, and
 * Detect: the map POST /api/v1/control/detect makes, shown under it) and one Reference (a
 * picture, an IP-Adapter, a weight). `panel` is what the section shares with them: the rows
 * by key, the server's preprocessors, the card applied, and what follows a change. */
import { api, errorText } from "../../lib/api.js";
import { $, announce, el } from "../../lib/dom.js";
import { pictureData } from "../../lib/pictures.js";
import { config } from "./config.js";
import { clearFieldError, currentCard, numberValue, paintRange } from "./fields.js";
import {
  PROCESSOR_RES, RANGE, REFERENCE_WEIGHT, RESIZE_MODES, WEIGHT, CONTROL_MODES, changeReference, changeUnit,
  defaultPreprocessor, guidesFor, imageValue, offeredPreprocessors, preprocessorOf, thresholdValue, thresholdsOf,
  unitControlnets,
} from "./guides.js";
import { createScribble } from "./scribble.js";
import { state } from "./state.js";

export const panel = {
  rows: new Map(), // unit or reference key -> {node, scribble, parts}
  preprocessors: [], // the server's list (GET /api/v1/control/preprocessors)
  card: null, // the card the section shows (models.js applies it)
  changed: () => {},
  removeUnit: () => {},
  removeReference: () => {},
};

/** Whether the panel inpaints now (the inpaint preprocessor reads the task's mask). */
export function inpainting() { return !!state.initImage && state.edit.mode === "inpaint"; }

/** A unit's picture as it is sent: the scribble drawn (when drawing), else its image. */
export function imageOf(item) {
  const row = panel.rows.get(item.key);
  if (item.source === "draw") return row && row.scribble && row.scribble.inked() ? row.scribble.toDataURL() : null;
  if (!item.image && item.preprocessor && (preprocessorOf(panel.preprocessors, item.preprocessor) || {}).needs_mask && state.initImage) {
    return state.initImage.id; // the inpaint preprocessor reads the start picture
  }
  return imageValue(item.image);
}

export function hasImage(item) {
  if (item.source === "draw") {
    const row = panel.rows.get(item.key);
    return !!(row && row.scribble && row.scribble.inked());
  }
  return !!imageOf(item);
}

/* ---------- pictures from files (lib/pictures.js: scaled to the user's pixel limit) ---------- */

export function readPicture(file) { return pictureData(file, config.baseSize.maxPixels); }

/* ---------- small controls ---------- */

let ids = 0;
function uid(name) { ids += 1; return "guide-" + name + "-" + ids; }

function numberField(labelText, rule, value, onValue, extra) {
  const id = uid("n");
  const input = el("input", {
    class: "num", id, type: "number", inputmode: "decimal", min: rule.min, max: rule.max, step: rule.step,
    value: value === null || value === undefined ? "" : value, dataset: extra || {},
  });
  input.addEventListener("change", () => onValue(input.value, input));
  input.addEventListener("input", () => { if (String(input.value).trim() !== "") onValue(input.value, null); });
  return { node: el("label", { class: "guide-num", for: id }, [el("span", { text: labelText }), input]), input };
}

function sliderField(labelText, rule, value, onValue, name) {
  const id = uid("w");
  const number = el("input", {
    class: "num", id, type: "number", inputmode: "decimal", min: rule.min, max: rule.max, step: rule.step, value,
    dataset: { name },
  });
  const range = el("input", {
    class: "range", type: "range", min: rule.min, max: rule.max, step: rule.step, value,
    "aria-label": labelText + " slider", tabindex: "-1",
  });
  paintRange(range);
  const take = (raw, rewrite) => {
    const v = onValue(raw);
    range.value = String(v);
    paintRange(range);
    if (rewrite) number.value = String(v);
  };
  number.addEventListener("input", () => { if (String(number.value).trim() !== "") take(number.value, false); });
  number.addEventListener("change", () => take(number.value, true));
  range.addEventListener("input", () => take(range.value, true));
  return el("div", { class: "guide-slider" }, [
    el("div", { class: "slider-field__head" }, [el("label", { for: id, text: labelText }), number]), range,
  ]);
}

function select(labelText, options, value, onValue, name) {
  const id = uid("s");
  const node = el("select", { id, dataset: { name } }, options.map(([v, text]) => el("option", { value: v, text })));
  if (options.some(([v]) => v === value)) node.value = value;
  node.addEventListener("change", () => onValue(node.value));
  return { node: el("div", { class: "guide-select" }, [el("label", { for: id, text: labelText }), node]), input: node };
}

export function thumb(image, alt) {
  return el("img", { class: "guide-thumb", src: image.thumbnail_url || image.data || "", alt, width: 64, height: 64 });
}

/* ---------- Control units ---------- */

export function unitIndex(key) { return state.guides.units.findIndex((u) => u.key === key); }

export function updateUnit(key, change, options) {
  const i = unitIndex(key);
  if (i === -1) return null;
  state.guides.units[i] = changeUnit(state.guides.units[i], change);
  clearFieldError("control");
  staleMap(key);
  if (!options || options.notify !== false) panel.changed();
  return state.guides.units[i];
}

function staleMap(key) {
  const row = panel.rows.get(key);
  if (row && row.parts.map.dataset.state === "shown") row.parts.map.dataset.state = "stale";
}

export function controlnets() { return guidesFor(config.guides, "controlnet", (panel.card || currentCard()).family); }
export function adapters() { return guidesFor(config.guides, "ipadapter", (panel.card || currentCard()).family); }

export function preprocessorOptions() {
  return offeredPreprocessors(panel.preprocessors, inpainting()).map((p) => [p.id, p.label || p.id]);
}

/** The threshold fields of the unit's preprocessor (none for one without). */
function renderThresholds(unit, row) {
  const box = row.parts.thresholds;
  const t = thresholdsOf(preprocessorOf(panel.preprocessors, unit.preprocessor));
  const fields = [];
  [["a", "threshold_a"], ["b", "threshold_b"]].forEach(([key, field]) => {
    const rule = t[key];
    if (!rule) return;
    const value = thresholdValue(rule, unit[field]);
    fields.push(numberField(rule.label || "Threshold " + key.toUpperCase(), rule, value, (raw, input) => {
      const v = thresholdValue(rule, raw);
      updateUnit(unit.key, { [field]: v });
      if (input) input.value = String(v);
    }, { name: field }).node);
  });
  box.replaceChildren(...fields);
  box.hidden = fields.length === 0;
}

export function fillPreprocessors(unit, row) {
  const sel = row.parts.preprocessor;
  const options = preprocessorOptions();
  sel.replaceChildren(...options.map(([v, text]) => el("option", { value: v, text })));
  if (!options.some(([v]) => v === unit.preprocessor) && options.length) {
    unit = updateUnit(unit.key, { preprocessor: defaultPreprocessor(offeredPreprocessors(panel.preprocessors, inpainting()), unit.source) },
                      { notify: false }) || unit;
  }
  sel.value = unit.preprocessor;
  renderThresholds(unit, row);
}

/** The ControlNets a unit may choose: its family's, never a Union that takes every unit
 * beside another ControlNet (guides.js's unitControlnets: the first unit's decides). */
export function unitChoices(key) { return unitControlnets(controlnets(), state.guides.units, key); }

export function fillModels(unit, row) {
  const sel = row.parts.model;
  const { choices: list, note } = unitChoices(unit.key);
  sel.replaceChildren(...(list.length ? list.map((g) => el("option", { value: g.id, text: g.name || g.id }))
    : [el("option", { value: "", text: "No ControlNet fits this model" })]));
  if (!list.some((g) => g.id === unit.model)) unit = updateUnit(unit.key, { model: list.length ? list[0].id : "" }, { notify: false }) || unit;
  sel.value = unit.model;
  sel.disabled = !list.length;
  row.parts.modelNote.textContent = note;
  row.parts.modelNote.hidden = !note;
}

/** Every unit's ControlNet choices again, in order (the first unit's choice decides the others'). */
export function refillModels() {
  state.guides.units.forEach((u) => {
    const row = panel.rows.get(u.key);
    if (row) fillModels(state.guides.units[unitIndex(u.key)] || u, row);
  });
}

function setSource(unit, row, source, notify) {
  updateUnit(unit.key, { source }, { notify });
  const now = state.guides.units[unitIndex(unit.key)];
  row.node.dataset.source = source;
  row.parts.sourceRadios.forEach((radio) => { radio.checked = radio.value === source; });
  row.parts.upload.hidden = source !== "upload";
  row.parts.draw.hidden = source !== "draw";
  if (source === "draw" && !row.scribble) {
    row.scribble = createScribble(row.parts.canvas, {
      width: numberValue("width"), height: numberValue("height"),
      // (A drawing counts once it has a line: the cost and the estimate follow.)
      onChange: () => { clearFieldError("control"); staleMap(unit.key); renderScribbleTools(row); panel.changed(); },
    });
    row.parts.brush.value = String(row.scribble.brush());
    renderScribbleTools(row);
  }
  // A drawing reads best as a scribble; a picture as its edges: the preprocessor follows
  // the source while it is still the other source's default.
  const other = defaultPreprocessor(panel.preprocessors, source === "draw" ? "upload" : "draw");
  if (now && now.preprocessor === other) {
    updateUnit(unit.key, { preprocessor: defaultPreprocessor(offeredPreprocessors(panel.preprocessors, inpainting()), source) }, { notify });
    fillPreprocessors(state.guides.units[unitIndex(unit.key)], row);
  }
}

function renderScribbleTools(row) {
  row.parts.undo.disabled = !row.scribble || !row.scribble.canUndo();
  row.parts.drawStatus.textContent = row.scribble && row.scribble.inked()
    ? "Drawn. Press Detect to see the map the model will follow." : "Draw white lines on the black: the outline to follow.";
}

function showImage(unit, row) {
  const box = row.parts.picture;
  if (unit.image) {
    box.replaceChildren(thumb(unit.image, "The control picture"));
    box.hidden = false;
  } else {
    box.replaceChildren();
    box.hidden = true;
  }
  row.parts.dropTitle.textContent = unit.image ? "Choose another picture" : "Choose a picture";
}

function detect(unit, row) {
  const current = state.guides.units[unitIndex(unit.key)];
  if (!current) return;
  const image = imageOf(current);
  const status = row.parts.detectStatus;
  const map = row.parts.map;
  if (!image) {
    status.textContent = current.source === "draw" ? "Draw something first." : "Choose a picture first.";
    return;
  }
  const t = thresholdsOf(preprocessorOf(panel.preprocessors, current.preprocessor));
  const body = {
    image, preprocessor: current.preprocessor, processor_res: current.processor_res,
    threshold_a: t.a ? thresholdValue(t.a, current.threshold_a) : null,
    threshold_b: t.b ? thresholdValue(t.b, current.threshold_b) : null,
  };
  if ((preprocessorOf(panel.preprocessors, current.preprocessor) || {}).needs_mask && state.edit.mask) body.mask = state.edit.mask();
  status.textContent = "Detecting…";
  row.parts.detect.disabled = true;
  map.dataset.state = "loading";
  api("POST", "/api/v1/control/detect", body).then((res) => {
    row.parts.detect.disabled = false;
    if (!res.ok || !res.data || !res.data.image) {
      map.dataset.state = "error";
      status.textContent = errorText(res, "The map could not be made.");
      return;
    }
    map.src = res.data.image;
    map.hidden = false;
    map.dataset.state = "shown";
    map.dataset.preprocessor = current.preprocessor;
    status.textContent = "The " + (optionText(row.parts.preprocessor) || current.preprocessor) + " map" +
      (res.data.width && res.data.height ? " (" + res.data.width + " × " + res.data.height + ")" : "") +
      ": what the ControlNet follows.";
    announce(status.textContent);
  });
}

function optionText(selectNode) {
  const option = selectNode.options[selectNode.selectedIndex];
  return option ? option.textContent : "";
}

export function removeButton(text, onClick) {
  const button = el("button", { type: "button", class: "icon-btn guide-remove", "aria-label": text, title: text },
    [el("span", { "aria-hidden": "true", text: "×" })]);
  button.addEventListener("click", onClick);
  return button;
}

export function createUnitRow(unit) {
  const key = unit.key;
  const name = "source-" + key;
  const sourceRadios = [["upload", "Picture"], ["draw", "Draw"]].map(([value]) => el("input", {
    type: "radio", name, value, checked: unit.source === value,
  }));
  const sources = el("div", { class: "guide-unit__sources", role: "radiogroup", "aria-label": "Source" },
    sourceRadios.map((radio, i) => el("label", { class: "chip guide-chip" }, [radio, el("span", { text: i ? "Draw" : "Picture" })])));
  const fileId = uid("file");
  const file = el("input", { class: "visually-hidden guide-file", id: fileId, type: "file", accept: "image/png,image/jpeg,image/webp" });
  const dropTitle = el("span", { class: "dropzone__title", text: "Choose a picture" });
  const picture = el("div", { class: "guide-unit__picture", hidden: true });
  const upload = el("div", { class: "guide-unit__upload" }, [
    el("label", { class: "dropzone guide-drop", for: fileId }, [file,
      el("span", { class: "dropzone__text" }, [dropTitle, el("span", { class: "dropzone__sub", text: "A photo, a sketch or a control map" })])]),
    picture,
  ]);
  const canvas = el("canvas", { class: "scribble-canvas", role: "img", "aria-label": "Scribble: draw the outline to follow", tabindex: "0" });
  const toolName = "tool-" + key;
  const tools = [["draw", "Draw"], ["erase", "Erase"]].map(([value, text]) => el("label", { class: "chip guide-chip" }, [
    el("input", { type: "radio", name: toolName, value, checked: value === "draw" }), el("span", { text })]));
  const brushId = uid("brush");
  const brush = el("input", { class: "range guide-brush", id: brushId, type: "range", min: 1, max: 48, step: 1, value: 8 });
  const undo = el("button", { type: "button", class: "btn btn--tiny btn--ghost guide-undo", text: "Undo", disabled: true });
  const clear = el("button", { type: "button", class: "btn btn--tiny btn--ghost guide-clear", text: "Clear" });
  const drawStatus = el("p", { class: "field-hint guide-draw-status", "aria-live": "polite" });
  const draw = el("div", { class: "guide-unit__draw", hidden: true }, [
    el("div", { class: "scribble-stage" }, [canvas]),
    el("div", { class: "guide-unit__tools", role: "group", "aria-label": "Drawing tools" }, [
      ...tools, el("label", { class: "guide-brush-label", for: brushId, text: "Line" }), brush, undo, clear,
    ]),
    drawStatus,
  ]);

  const preprocessor = select("Preprocessor", [], unit.preprocessor, (v) => {
    updateUnit(key, { preprocessor: v });
    renderThresholds(state.guides.units[unitIndex(key)], panel.rows.get(key));
  }, "preprocessor");
  const model = select("ControlNet", [], unit.model, (v) => {
    updateUnit(key, { model: v }, { notify: false });
    refillModels(); // (the other units follow the first one's Union)
    panel.changed();
  }, "model");
  const modelNote = el("p", { class: "field-hint guide-model-note", hidden: true });
  const weight = sliderField("Weight", WEIGHT, unit.weight, (v) => updateUnit(key, { weight: v }).weight, "weight");
  const start = numberField("Start", RANGE, unit.start, (raw, input) => {
    const u = updateUnit(key, { start: raw });
    if (input) input.value = String(u.start);
    end.input.value = String(u.end);
  }, { name: "start" });
  const end = numberField("End", RANGE, unit.end, (raw, input) => {
    const u = updateUnit(key, { end: raw });
    if (input) input.value = String(u.end);
    start.input.value = String(u.start);
  }, { name: "end" });
  // FLUX's ControlNet pipelines take the balanced mode only (the server refuses the others).
  const modes = (panel.card || currentCard()).family === "flux" ? CONTROL_MODES.filter(([id]) => id === "balanced") : CONTROL_MODES;
  if (!modes.some(([id]) => id === unit.control_mode)) updateUnit(key, { control_mode: "balanced" }, { notify: false });
  const mode = select("Control mode", modes, unit.control_mode, (v) => updateUnit(key, { control_mode: v }), "control_mode");
  const resize = select("Resize mode", RESIZE_MODES, unit.resize_mode, (v) => updateUnit(key, { resize_mode: v }), "resize_mode");
  const res = numberField("Preprocessor resolution", PROCESSOR_RES, unit.processor_res, (raw, input) => {
    const u = updateUnit(key, { processor_res: raw });
    if (input) input.value = String(u.processor_res);
  }, { name: "processor_res" });
  const perfect = el("input", { type: "checkbox", checked: unit.pixel_perfect, dataset: { name: "pixel_perfect" } });
  perfect.addEventListener("change", () => updateUnit(key, { pixel_perfect: perfect.checked }));
  const thresholds = el("div", { class: "guide-unit__thresholds", hidden: true });
  const detectButton = el("button", { type: "button", class: "btn btn--small btn--ghost guide-detect", text: "Detect" });
  const detectStatus = el("p", { class: "field-hint guide-detect-status", "aria-live": "polite" });
  const map = el("img", { class: "guide-map", alt: "The detected control map", hidden: true });

  const node = el("li", { class: "guide-unit", dataset: { key, source: unit.source } }, [
    el("div", { class: "guide-unit__head" }, [
      el("span", { class: "guide-unit__title" }), sources,
      removeButton("Remove this control unit", () => panel.removeUnit(key)),
    ]),
    upload, draw,
    el("div", { class: "guide-unit__row" }, [preprocessor.node, model.node]),
    modelNote,
    weight,
    el("div", { class: "guide-unit__row guide-unit__row--range", role: "group", "aria-label": "The steps it applies to, as fractions" },
      [start.node, end.node]),
    mode.node,
    el("details", { class: "guide-more" }, [el("summary", { text: "More settings" }),
      el("div", { class: "guide-more__body" }, [resize.node, res.node, thresholds,
        el("label", { class: "checkbox" }, [perfect, el("span", { text: "Pixel perfect: the preprocessor at the task's size" })])])]),
    el("div", { class: "guide-unit__detect" }, [detectButton, detectStatus]),
    map,
  ]);
  const row = {
    node, scribble: null,
    parts: {
      sourceRadios, upload, draw, canvas, brush, undo, clear, drawStatus, picture, dropTitle,
      preprocessor: preprocessor.input, model: model.input, modelNote, thresholds, detect: detectButton, detectStatus, map,
    },
  };
  panel.rows.set(key, row);

  sourceRadios.forEach((radio) => radio.addEventListener("change", () => {
    if (radio.checked) setSource(state.guides.units[unitIndex(key)], row, radio.value);
  }));
  file.addEventListener("change", () => {
    const chosen = file.files && file.files[0];
    file.value = "";
    if (!chosen) return;
    detectStatus.textContent = "Reading the picture…";
    readPicture(chosen).then((image) => {
      if (!image) { detectStatus.textContent = "That file is not a picture this browser can read."; return; }
      const u = updateUnit(key, { image });
      if (!u) return;
      detectStatus.textContent = "";
      showImage(u, row);
    });
  });
  tools.forEach((label) => {
    const radio = $("input", label);
    radio.addEventListener("change", () => { if (radio.checked && row.scribble) row.scribble.setTool(radio.value); });
  });
  brush.addEventListener("input", () => { if (row.scribble) row.scribble.setBrush(brush.value); });
  undo.addEventListener("click", () => { if (row.scribble) row.scribble.undo(); });
  clear.addEventListener("click", () => { if (row.scribble) { row.scribble.clear(); announce("The drawing is cleared."); } });
  detectButton.addEventListener("click", () => detect(unit, row));

  fillPreprocessors(unit, row);
  fillModels(state.guides.units[unitIndex(key)] || unit, row);
  showImage(unit, row);
  if (unit.source === "draw") setSource(unit, row, "draw", false);
  return row;
}

/* ---------- References ---------- */

export function referenceIndex(key) { return state.guides.references.findIndex((r) => r.key === key); }

export function updateReference(key, change) {
  const i = referenceIndex(key);
  if (i === -1) return null;
  state.guides.references[i] = changeReference(state.guides.references[i], change);
  clearFieldError("references");
  panel.changed();
  return state.guides.references[i];
}

export function createReferenceRow(reference) {
  const key = reference.key;
  const fileId = uid("file");
  const file = el("input", { class: "visually-hidden guide-file", id: fileId, type: "file", accept: "image/png,image/jpeg,image/webp" });
  const picture = el("div", { class: "guide-unit__picture", hidden: true });
  const dropTitle = el("span", { class: "dropzone__title", text: "Choose a picture" });
  const model = select("IP-Adapter", [], reference.model, (v) => updateReference(key, { model: v }), "model");
  const weight = sliderField("Weight", REFERENCE_WEIGHT, reference.weight, (v) => updateReference(key, { weight: v }).weight, "weight");
  const status = el("p", { class: "field-hint", "aria-live": "polite" });
  const node = el("li", { class: "guide-unit guide-reference", dataset: { key } }, [
    el("div", { class: "guide-unit__head" }, [
      el("span", { class: "guide-unit__title" }),
      removeButton("Remove this reference", () => panel.removeReference(key)),
    ]),
    el("div", { class: "guide-unit__upload" }, [
      el("label", { class: "dropzone guide-drop", for: fileId }, [file,
        el("span", { class: "dropzone__text" }, [dropTitle, el("span", { class: "dropzone__sub", text: "Its style or subject is carried over" })])]),
      picture,
    ]),
    model.node, weight, status,
  ]);
  const row = { node, scribble: null, parts: { picture, dropTitle, model: model.input } };
  panel.rows.set(key, row);
  file.addEventListener("change", () => {
    const chosen = file.files && file.files[0];
    file.value = "";
    if (!chosen) return;
    readPicture(chosen).then((image) => {
      if (!image) { status.textContent = "That file is not a picture this browser can read."; return; }
      const r = updateReference(key, { image });
      if (r) showImage(r, row);
    });
  });
  fillReferenceModels(reference, row);
  showImage(reference, row);
  return row;
}

export function fillReferenceModels(reference, row) {
  const sel = row.parts.model;
  const list = adapters();
  sel.replaceChildren(...(list.length ? list.map((g) => el("option", { value: g.id, text: g.name || g.id }))
    : [el("option", { value: "", text: "No IP-Adapter fits this model" })]));
  const i = referenceIndex(reference.key);
  if (!list.some((g) => g.id === reference.model) && i !== -1) {
    state.guides.references[i] = changeReference(reference, { model: list.length ? list[0].id : "" });
  }
  sel.value = i !== -1 ? state.guides.references[i].model : "";
  sel.disabled = !list.length;
}

