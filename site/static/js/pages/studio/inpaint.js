/* Daydream studio — what the start picture is for: image to image, Inpaint (a mask painted
 * on the canvas, maskcanvas.js) or Outpaint (the picture extended on its sides). The mode
 * choice, the brush and the mask's history, the options named as A1111 names them (Mask
 * blur, Inpaint area and its padding, Masked content, Invert mask), the outpaint sides and
 * the "extend to a shape" helper, the lines that say how the picture, its mask and the
 * result are sized, and Reuse bringing all of it back. state.edit is what fields.js reads
 * into the task (the fields of the chosen mode only, editing.js). */
import { $all, announce, byId } from "../../lib/dom.js";
import { config } from "./config.js";
import { findModel } from "./cards.js";
import {
  SIDES, cleanOutpaint, extendToRatio, extendsAny, maskFitLine, outpaintLine, panelSize, snapOutpaint, taskMode,
} from "./editing.js";
import { scheduleEstimate, updateCost } from "./estimate.js";
import { clearFieldError, currentCard, initFit, numberValue, setField, showFieldError } from "./fields.js";
import { createMaskCanvas } from "./maskcanvas.js";
import { parseRatio } from "./sizes.js";
import { state } from "./state.js";

let canvas = null;

function imageUrl(id) { return "/api/v1/images/" + encodeURIComponent(id) + "/full"; }

function rules() { return config.inpaint || {}; }

/** How the chosen model inpaints: "standard", "dedicated" or null (it cannot). */
function inpainting() {
  const select = byId("model");
  const model = findModel(config.models, select ? select.value : "");
  if (!model || model.inpainting === undefined) return "standard";
  return model.inpainting;
}

/** Can the chosen model start from a picture (image to image)? FLUX.2 dev cannot here. */
function startsFromPicture() {
  const select = byId("model");
  const model = findModel(config.models, select ? select.value : "");
  return !model || model.image_to_image !== false;
}

function modelName() {
  const select = byId("model");
  const option = select ? select.options[select.selectedIndex] : null;
  return option ? (option.title || option.textContent.trim()) : "This model";
}

function sizeStep() { return currentCard().sizeStep || config.size.step || 8; }

function modeRadio(mode) { return document.querySelector('input[name="edit_mode"][value="' + mode + '"]'); }

/* ---------- the mode ---------- */

/** Show the sections of `mode` ("img2img", "inpaint" or "outpaint") and follow it. */
export function setMode(mode) {
  const radio = modeRadio(mode);
  if (radio) radio.checked = true;
  state.edit.mode = mode;
  const section = byId("inpaint-section");
  const on = !!state.initImage;
  if (section) {
    section.hidden = !on || mode === "img2img";
    section.dataset.mode = mode;
  }
  const out = byId("outpaint-section");
  if (out) out.hidden = !on || mode !== "outpaint";
  const options = byId("inpaint-options");
  if (options) {
    options.hidden = !on || mode === "img2img";
    options.dataset.mode = mode;
  }
  ["mask", "mask_blur", "inpaint_area", "inpaint_padding", "masked_content", "mask_invert", "outpaint"]
    .forEach(clearFieldError);
  renderPadding();
  renderLines();
  updateCost();
  scheduleEstimate();
}

/** The modes the chosen model allows, with a note: one that cannot inpaint has image to
 * image only; an inpainting model needs a mask (or outpaint). */
function renderModes() {
  const box = byId("edit-modes");
  if (box) box.hidden = !state.initImage;
  const kind = inpainting();
  const note = byId("edit-mode-note");
  let text = "";
  ["inpaint", "outpaint"].forEach((mode) => { const r = modeRadio(mode); if (r) r.disabled = kind === null; });
  const plain = modeRadio("img2img");
  const fromPicture = startsFromPicture();
  if (plain) plain.disabled = kind === "dedicated" || !fromPicture;
  let mode = state.edit.mode;
  if (kind === null && !fromPicture) {
    text = modelName() + " cannot start from a picture; remove it, or choose a model that can.";
    mode = "img2img";
  } else if (kind === null) {
    text = modelName() + " cannot inpaint or outpaint; choose a model that can.";
    if (mode !== "img2img") mode = "img2img";
  } else if (kind === "dedicated") {
    text = modelName() + " is an inpainting model: paint a mask, or extend the picture.";
    if (mode === "img2img") mode = "inpaint";
  }
  if (note) { note.textContent = state.initImage ? text : ""; note.hidden = !state.initImage || !text; }
  // Without a picture an inpainting model has nothing to work on: say so where one is chosen.
  const ask = byId("inpaint-model-note");
  if (ask) {
    ask.hidden = !!state.initImage || kind !== "dedicated";
    ask.textContent = ask.hidden ? "" : modelName() + " is an inpainting model: choose a picture, then paint a mask over it.";
  }
  if (!state.initImage) mode = "img2img";
  // Another model may have another size step: the sides follow it.
  const snapped = snapOutpaint(state.edit.outpaint, sizeStep());
  if (SIDES.some((side) => snapped[side] !== state.edit.outpaint[side])) writeOutpaint(snapped);
  setMode(mode);
}

/* ---------- the lines and the canvas's layout ---------- */

function readOutpaint() {
  const raw = {};
  SIDES.forEach((side) => { raw[side] = numberValue("outpaint-" + side); });
  return cleanOutpaint(raw);
}

function writeOutpaint(outpaint) {
  const o = cleanOutpaint(outpaint);
  SIDES.forEach((side) => { const input = byId("outpaint-" + side); if (input) input.value = String(o[side]); });
  state.edit.outpaint = o;
}

function renderPadding() {
  const area = document.querySelector('input[name="inpaint_area"]:checked');
  const field = byId("inpaint-padding-field");
  if (field) field.hidden = state.edit.mode !== "inpaint" || !area || area.value !== "masked";
}

function renderLines() {
  const w = numberValue("width");
  const h = numberValue("height");
  const size = canvas ? canvas.size() : null;
  const fitLine = byId("mask-fit-line");
  const area = document.querySelector('input[name="inpaint_area"]:checked');
  if (fitLine) {
    fitLine.textContent = size ? maskFitLine(size.width, size.height, w, h, initFit(), area ? area.value : "whole",
                                             numberValue("inpaint_padding") || 0) : "";
  }
  const line = byId("outpaint-line");
  if (line) line.textContent = outpaintLine(w, h, state.edit.outpaint);
  const step = byId("outpaint-step");
  if (step) step.textContent = String(sizeStep());
  SIDES.forEach((side) => { const input = byId("outpaint-" + side); if (input) input.step = String(sizeStep()); });
  if (canvas) {
    canvas.setOutpaint(state.initImage && state.edit.mode === "outpaint" && w > 0 && h > 0
      ? Object.assign({ width: w, height: h, fit: initFit() }, state.edit.outpaint) : null);
  }
}

/** After the mask changed: the history buttons, what is painted, the error taken back. */
function onMaskChanged() {
  const undo = byId("mask-undo");
  const redo = byId("mask-redo");
  if (undo) undo.disabled = !canvas.canUndo();
  if (redo) redo.disabled = !canvas.canRedo();
  const { selected, total } = canvas.coverage();
  const node = byId("mask-canvas");
  if (node) {
    node.dataset.selected = String(selected);
    node.dataset.state = canvas.hasPicture() ? "ready" : "empty";
  }
  const status = byId("mask-status");
  if (status) {
    const pct = total ? Math.round((selected / total) * 1000) / 10 : 0;
    status.textContent = !canvas.hasPicture() ? "Loading the picture…"
      : selected ? "The mask covers " + (pct < 0.1 ? "under 0.1" : pct) + " % of the picture."
        : "Paint over the part to repaint.";
  }
  if (selected) clearFieldError("mask");
  renderLines();
}

/** What the server would refuse, said before sending: {field, message} or null. */
function check() {
  if (state.edit.mode === "inpaint") {
    if (!canvas || !canvas.hasPicture()) return { field: "mask", message: "The picture is still loading; try again in a moment." };
    const { selected, total } = canvas.coverage();
    const invert = byId("mask_invert");
    if (!selected) return { field: "mask", message: "Paint over the part of the picture to repaint." };
    if (invert && invert.checked && selected >= total) {
      return { field: "mask", message: "With Invert mask on, this mask leaves nothing to repaint." };
    }
  }
  if (state.edit.mode === "outpaint" && !extendsAny(state.edit.outpaint)) {
    return { field: "outpaint", message: "Extend at least one side (or choose Image to image)." };
  }
  return null;
}

/* While typing the sides are read as they are; once changed (or set), each is put on the step. */
function outpaintChanged(snap) {
  if (snap) writeOutpaint(snapOutpaint(readOutpaint(), sizeStep()));
  else state.edit.outpaint = readOutpaint();
  clearFieldError("outpaint");
  renderLines();
  updateCost();
  scheduleEstimate();
}

/* ---------- the tools ---------- */

function brushFromSliders() {
  const size = Number(byId("brush-size").value) || 32;
  const soft = Number(byId("brush-softness").value) || 0;
  byId("brush-size-value").textContent = size + " px";
  byId("brush-softness-value").textContent = soft + " %";
  canvas.setBrush(size, soft / 100);
}

function setTool(name) {
  const radio = document.querySelector('input[name="mask_tool"][value="' + name + '"]');
  if (radio) radio.checked = true;
  canvas.setTool(name);
  const node = byId("mask-canvas");
  if (node) node.dataset.tool = name;
}

function nudgeBrush(factor) {
  const range = byId("brush-size");
  range.value = String(Math.round(Math.min(Number(range.max), Math.max(Number(range.min), Number(range.value) * factor))));
  brushFromSliders();
}

function onKey(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "z") {
    event.preventDefault();
    if (event.shiftKey) canvas.redo(); else canvas.undo();
  } else if (mod && key === "y") {
    event.preventDefault();
    canvas.redo();
  } else if (!mod && event.target === byId("mask-canvas")) {
    if (key === "b") setTool("brush");
    else if (key === "e") setTool("eraser");
    else if (key === "[") nudgeBrush(1 / 1.25);
    else if (key === "]") nudgeBrush(1.25);
  }
}

/* ---------- Reuse ---------- */

/**
 * A task's start picture's mode back in the panel (after reuse.js set its settings and its
 * picture `init`): the inpaint settings, the outpaint sides and the panel's size before
 * the outpaint (the task's width × height are the result's), and its mask painted again.
 * A variant (another picture) of an outpaint starts from the result as image to image.
 */
export function restoreEdit(task, init) {
  let mode = init ? taskMode(task) : "img2img";
  const own = init && (init.id === task.init_image || (task.init_image && init.id === task.init_image.id));
  if (mode === "outpaint" && !own) mode = "img2img";
  const settings = task.inpaint || {};
  if (mode !== "img2img") {
    const r = rules();
    ["mask_blur", "inpaint_padding"].forEach((field) => {
      const value = settings[field] !== undefined && settings[field] !== null ? settings[field]
        : (r[field] ? r[field].default : "");
      setField(field, value);
    });
    const area = document.querySelector('input[name="inpaint_area"][value="' + (settings.inpaint_area || "whole") + '"]');
    if (area) area.checked = true;
    const content = document.querySelector('input[name="masked_content"][value="' + (settings.masked_content || "original") + '"]');
    if (content) content.checked = true;
    const invert = byId("mask_invert");
    if (invert) invert.checked = !!settings.mask_invert;
  }
  if (mode === "outpaint") {
    const [w, h] = panelSize(task);
    setField("width", w);
    setField("height", h);
    writeOutpaint(settings.outpaint);
  } else {
    writeOutpaint(null);
  }
  setMode(mode);
  renderModes();
  if (mode === "inpaint" && task.mask && canvas) {
    canvas.loadMask(imageUrl(task.mask)).then((ok) => {
      if (ok) announce("The mask of that task is on the canvas.");
    });
  }
}

/** "Reset to defaults": the inpaint settings and the outpaint sides back to theirs. */
export function resetEdit() {
  restoreEdit({ inpaint: {} }, null);
  const r = rules();
  ["mask_blur", "inpaint_padding"].forEach((field) => { if (r[field]) setField(field, r[field].default); });
  ["inpaint_area", "masked_content"].forEach((name) => {
    const value = r[name] ? r[name].default : null;
    const radio = value && document.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (radio) radio.checked = true;
  });
  const invert = byId("mask_invert");
  if (invert) invert.checked = false;
  renderPadding();
}

/** For tests and the console: how much of the picture the mask covers ({selected, total}). */
export function maskCoverage() { return canvas ? canvas.coverage() : { selected: 0, total: 0 }; }

/* ---------- wiring ---------- */

export function initInpaint() {
  const node = byId("mask-canvas");
  if (!node) return;
  canvas = createMaskCanvas(node, { onChange: onMaskChanged });
  state.edit.mask = () => canvas.toDataURL();
  state.edit.check = check;
  const r = rules();
  ["mask_blur", "inpaint_padding"].forEach((field) => {
    if (r[field] && byId(field) && byId(field).value === "") setField(field, r[field].default);
  });

  $all('input[name="edit_mode"]').forEach((radio) => {
    radio.addEventListener("change", () => { if (radio.checked) setMode(radio.value); });
  });
  $all('input[name="mask_tool"]').forEach((radio) => {
    radio.addEventListener("change", () => { if (radio.checked) setTool(radio.value); });
  });
  $all('input[name="masked_content"]').forEach((radio) => {
    radio.addEventListener("change", () => clearFieldError("masked_content"));
  });
  $all('input[name="inpaint_area"]').forEach((radio) => {
    radio.addEventListener("change", () => { clearFieldError("inpaint_area"); renderPadding(); renderLines(); });
  });
  ["brush-size", "brush-softness"].forEach((id) => byId(id).addEventListener("input", brushFromSliders));
  const actions = {
    "mask-undo": () => canvas.undo(), "mask-redo": () => canvas.redo(),
    "mask-invert-now": () => { canvas.invert(); announce("The mask is inverted."); },
    "mask-clear": () => { canvas.clear(); announce("The mask is cleared."); },
    "mask-zoom-in": () => canvas.zoom(1.5), "mask-zoom-out": () => canvas.zoom(1 / 1.5),
    "mask-fit": () => canvas.fit(),
  };
  Object.keys(actions).forEach((id) => { const b = byId(id); if (b) b.addEventListener("click", actions[id]); });
  const section = byId("inpaint-section");
  if (section) section.addEventListener("keydown", onKey);
  const invert = byId("mask_invert");
  if (invert) invert.addEventListener("change", () => { clearFieldError("mask_invert"); clearFieldError("mask"); });

  SIDES.forEach((side) => {
    const input = byId("outpaint-" + side);
    if (!input) return;
    input.addEventListener("input", () => outpaintChanged(false));
    input.addEventListener("change", () => outpaintChanged(true));
  });
  $all("[data-extend]").forEach((chip) => {
    chip.addEventListener("click", () => {
      const [a, b] = parseRatio(chip.dataset.extend);
      writeOutpaint(extendToRatio(numberValue("width"), numberValue("height"), a, b, sizeStep()));
      outpaintChanged(false);
      announce(byId("outpaint-line").textContent);
    });
  });
  const none = byId("outpaint-reset");
  if (none) none.addEventListener("click", () => { writeOutpaint(null); outpaintChanged(false); });

  document.addEventListener("studio:init-image", (event) => {
    const image = event.detail;
    clearFieldError("mask");
    canvas.setPicture(image ? imageUrl(image.id) : null).then((size) => {
      if (!size && image && state.initImage && state.initImage.id === image.id) {
        showFieldError("mask", "The picture could not be loaded to paint on; image to image still works.");
      }
    });
    onMaskChanged();
    renderModes();
  });
  document.addEventListener("studio:changed", renderLines);
  const model = byId("model");
  if (model) model.addEventListener("change", renderModes);
  brushFromSliders();
  setTool("brush");
  renderModes();
}
