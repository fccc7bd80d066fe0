/* Daydream — the words for a task's guides (issue 25), on the studio's cards and in the
 * gallery's lightbox: each ControlNet unit ("canny · Demo ControlNet · weight 1 · steps
 * 0–0.5") and each reference ("Demo IP-Adapter · weight 0.6"), from the task's (or the
 * PNG's) `control` and `references`. Pure: unit-tested (tests/js/studio-guides.test.js). */
import { isNumber } from "./format.js";

/** The control modes as A1111's ControlNet names them. */
export const CONTROL_MODES = [["balanced", "Balanced"], ["prompt", "My prompt is more important"],
                              ["control", "ControlNet is more important"]];

function label(list, id) {
  const found = (list || []).find(([key]) => key === id);
  return found ? found[1] : id;
}

function number(value) {
  return isNumber(value) ? String(Math.round(value * 100) / 100) : "";
}

/** The words for one unit of a task (card, lightbox): "canny · Demo ControlNet · weight 1 ·
 * steps 0–0.5 · ControlNet is more important". names: {id: name} of the models. */
export function unitText(unit, names, preprocessorNames) {
  const u = unit || {};
  const model = u.model_name || (names && names[u.model]) || u.model || "";
  const pre = (preprocessorNames && preprocessorNames[u.preprocessor]) || u.preprocessor || "none";
  const parts = [pre, model, "weight " + number(u.weight)];
  const start = isNumber(u.start) ? u.start : 0;
  const end = isNumber(u.end) ? u.end : 1;
  if (start !== 0 || end !== 1) parts.push("steps " + number(start) + "–" + number(end));
  if (u.control_mode && u.control_mode !== "balanced") parts.push(label(CONTROL_MODES, u.control_mode));
  return parts.filter(Boolean).join(" · ");
}

/** The words for one reference: "Demo IP-Adapter · weight 0.6". */
export function referenceText(reference, names) {
  const r = reference || {};
  const model = r.model_name || (names && names[r.model]) || r.model || "";
  return [model, "weight " + number(r.weight)].filter(Boolean).join(" · ");
}

/** The lines a task's card and the lightbox list for its guides: [[label, text]]. */
export function guideLines(task, names, preprocessorNames) {
  const lines = [];
  (Array.isArray(task && task.control) ? task.control : []).forEach((u, i) => {
    lines.push(["ControlNet " + (i + 1), unitText(u, names, preprocessorNames)]);
  });
  (Array.isArray(task && task.references) ? task.references : []).forEach((r, i) => {
    lines.push(["Reference " + (i + 1), referenceText(r, names)]);
  });
  return lines;
}
