/* Daydream studio — the Hires fix section: a first pass at width × height, upscaled by the
 * chosen scale and upscaler (latent modes, Lanczos / Nearest, the enabled upscaler models:
 * studio-config "hires") and repainted by a second pass at the chosen denoising strength.
 * Text to image only: the section is hidden while a start picture is chosen. The task's
 * `hires` field (API.md, "Hires fix"); its cost is added to the formula's (hiresCost). */
import { byId } from "../../lib/dom.js";
import { formatNumber } from "../../lib/format.js";
import { config } from "./config.js";
import { paintRange } from "./fields.js";
import { state } from "./state.js";

const NUMBERS = { scale: "hires_scale", steps: "hires_steps", denoising: "hires_denoising" };

function settings() {
  return config.hires || {};
}

function number(id) {
  const input = byId(id);
  if (!input || String(input.value).trim() === "") return null;
  const n = Number(input.value);
  return isFinite(n) ? n : null;
}

function setNumber(id, value) {
  const input = byId(id);
  const range = byId(id + "-range");
  if (input) input.value = String(value);
  if (range) {
    range.value = String(value);
    paintRange(range);
  }
}

/** Whether the next task has a hires fix: switched on, and text to image (no start picture). */
export function hiresOn() {
  const box = byId("hires_enabled");
  return !!(box && box.checked) && !state.initImage;
}

/** The `hires` field of the next task, or null. */
export function hiresPayload() {
  if (!hiresOn()) return null;
  const rules = settings();
  const value = (key) => {
    const n = number(NUMBERS[key]);
    return n === null ? (rules[key] ? rules[key].default : null) : n;
  };
  const select = byId("hires_upscaler");
  return { scale: value("scale"), upscaler: select && select.value ? select.value : rules.upscaler || "latent",
           steps: value("steps"), denoising: value("denoising") };
}

/** The result's size: width × height times the scale, each side rounded to the model's step. */
export function hiresSize(width, height, scale, step) {
  const s = step || 8;
  return [Math.max(s, Math.round((width * scale) / s) * s), Math.max(s, Math.round((height * scale) / s) * s)];
}

/** The steps the second pass runs: int(steps × denoising), its steps 0 meaning the first pass's. */
export function hiresSteps(steps, hires) {
  const second = hires.steps || steps;
  return Math.max(0, Math.min(second, Math.floor(second * hires.denoising + 1e-9)));
}

/** What a hires fix adds to the formula's cost (0 without one; null while a number is missing). */
export function hiresCost(params, cost) {
  const hires = hiresPayload();
  if (!hires) return 0;
  const values = [params.samples, params.steps, params.width, params.height, hires.scale, hires.denoising];
  if (values.some((v) => v === null || v === undefined || !isFinite(v))) return null;
  const [width, height] = hiresSize(params.width, params.height, hires.scale, config.size && config.size.step);
  const steps = hiresSteps(params.steps, hires);
  return params.samples * Math.ceil((steps * width * height) / (cost.steps_unit * cost.pixels_unit));
}

function render() {
  const section = byId("hires-section");
  const options = byId("hires-options");
  const box = byId("hires_enabled");
  if (section) section.hidden = !!state.initImage;
  if (options) options.hidden = !(box && box.checked);
  const line = byId("hires-line");
  const hires = hiresPayload();
  if (!line || !hires) return;
  const width = number("width");
  const height = number("height");
  if (width === null || height === null || hires.scale === null) {
    line.textContent = "";
    return;
  }
  const [w, h] = hiresSize(width, height, hires.scale, config.size && config.size.step);
  const limits = config.size || {};
  const over = (limits.max && Math.max(w, h) > limits.max) || (limits.maxPixels && w * h > limits.maxPixels);
  line.textContent = "Result: " + w + " × " + h + " (the first pass " + width + " × " + height + ")" +
    (over ? ". That is over your limit of " + limits.max + " px a side, " + formatNumber(limits.maxPixels) +
            " pixels: lower the scale or the size." : ".");
  line.classList.toggle("is-note", !!over);
}

/** Put a task's hires fix (task.hires, or none) back into the section. */
export function restoreHires(task) {
  const hires = task && task.hires && typeof task.hires === "object" ? task.hires : null;
  const box = byId("hires_enabled");
  if (box) box.checked = !!hires;
  if (hires) {
    let scale = hires.scale;
    if ((scale === null || scale === undefined) && task.width && hires.width) scale = hires.width / task.width;
    if (scale) setNumber(NUMBERS.scale, Math.round(scale * 100) / 100);
    setNumber(NUMBERS.steps, hires.steps || 0);
    if (hires.denoising !== null && hires.denoising !== undefined) setNumber(NUMBERS.denoising, hires.denoising);
    const select = byId("hires_upscaler");
    if (select && Array.from(select.options).some((o) => o.value === hires.upscaler)) select.value = hires.upscaler;
  }
  render();
}

/** Wire the section; onChange: what follows a change (the cost, the estimate). */
export function initHires(onChange) {
  const changed = () => {
    render();
    onChange();
  };
  const box = byId("hires_enabled");
  if (box) box.addEventListener("change", changed);
  Object.values(NUMBERS).forEach((id) => {
    const input = byId(id);
    if (!input) return;
    input.addEventListener("input", () => {
      const range = byId(id + "-range");
      if (range && number(id) !== null) {
        range.value = input.value;
        paintRange(range);
      }
      changed();
    });
  });
  const select = byId("hires_upscaler");
  if (select) select.addEventListener("change", changed);
  // The size, the model and the start picture change the result's size and whether it applies.
  document.addEventListener("studio:changed", render);
  render();
}
