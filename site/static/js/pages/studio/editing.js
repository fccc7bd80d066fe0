/* Daydream studio — inpainting and outpainting, the pure part: the result size of an
 * outpaint, extending to an aspect ratio, the panel's size back from a task, the fields a
 * mode sends and the lines that say how the picture and its mask are fitted. No DOM;
 * unit-tested (tests/js/studio-editing.test.js). The contract is docs/API.md
 * ("Inpainting and outpainting"): width × height are the size the start picture is fitted
 * to, the result is (width + left + right) × (height + top + bottom). */
import { fitDescription } from "./sizes.js";

export const SIDES = ["left", "right", "top", "bottom"];
export const MODES = ["img2img", "inpaint", "outpaint"];

/** {left, right, top, bottom} as whole pixels ≥ 0 (anything else 0). */
export function cleanOutpaint(raw) {
  const out = {};
  SIDES.forEach((side) => {
    const n = Number(raw && raw[side]);
    out[side] = isFinite(n) && n > 0 ? Math.floor(n) : 0;
  });
  return out;
}

/** Whether an outpaint extends anything. */
export function extendsAny(outpaint) {
  return SIDES.some((side) => cleanOutpaint(outpaint)[side] > 0);
}

/** The result's [width, height] of a picture fitted to width × height and extended. */
export function resultSize(width, height, outpaint) {
  const o = cleanOutpaint(outpaint);
  return [width + o.left + o.right, height + o.top + o.bottom];
}

/** Each side a multiple of `step`: the nearest one. */
export function snapOutpaint(outpaint, step) {
  const o = cleanOutpaint(outpaint);
  const s = step > 0 ? step : 8;
  SIDES.forEach((side) => { o[side] = Math.round(o[side] / s) * s; });
  return o;
}

/**
 * The outpaint that extends width × height to the ratio a:b, split evenly between the two
 * sides that grow (left and right when the ratio is wider, else top and bottom), each a
 * multiple of `step`; all zero when the picture already has (about) that shape.
 */
export function extendToRatio(width, height, a, b, step) {
  const out = { left: 0, right: 0, top: 0, bottom: 0 };
  if (!(width > 0 && height > 0 && a > 0 && b > 0)) return out;
  const s = step > 0 ? step : 8;
  const ratio = a / b;
  if (ratio > width / height) {
    const extra = Math.round((height * ratio - width) / s) * s;
    if (extra <= 0) return out;
    out.left = Math.floor(extra / 2 / s) * s;
    out.right = extra - out.left;
  } else {
    const extra = Math.round((width / ratio - height) / s) * s;
    if (extra <= 0) return out;
    out.top = Math.floor(extra / 2 / s) * s;
    out.bottom = extra - out.top;
  }
  return out;
}

/** The mode a task was made in: "outpaint" when it extends, "inpaint" with a mask, else "img2img". */
export function taskMode(task) {
  const inpaint = task && task.inpaint;
  if (inpaint && extendsAny(inpaint.outpaint)) return "outpaint";
  if (task && task.mask) return "inpaint";
  return "img2img";
}

/** The panel's width × height of a task: its own, less the outpaint (the task JSON's are
 * the result's size). */
export function panelSize(task) {
  const inpaint = task && task.inpaint;
  const o = cleanOutpaint(inpaint && inpaint.outpaint);
  return [task.width - o.left - o.right, task.height - o.top - o.bottom];
}

/**
 * The fields a mode adds to a task with a start picture. values: {mask_blur,
 * inpaint_area, inpaint_padding, masked_content, mask_invert} as the panel holds them;
 * mask: the mask's data URL (inpaint; null when only estimating); outpaint: the sides.
 * Inpaint: mask and every setting; outpaint: the sides, mask blur and masked content
 * (the new area is the mask); image to image: nothing.
 */
export function modeFields(mode, values, mask, outpaint) {
  const v = values || {};
  if (mode === "inpaint") {
    const out = {
      mask_blur: v.mask_blur, inpaint_area: v.inpaint_area, masked_content: v.masked_content,
      mask_invert: !!v.mask_invert,
    };
    if (v.inpaint_area === "masked") out.inpaint_padding = v.inpaint_padding;
    if (mask) out.mask = mask;
    return out;
  }
  if (mode === "outpaint") {
    return { outpaint: cleanOutpaint(outpaint), mask_blur: v.mask_blur, masked_content: v.masked_content };
  }
  return {};
}

/** The line under the inpaint canvas: how the picture (imgW × imgH) and the mask painted
 * over it are fitted to width × height, and what "Only masked" does. */
export function maskFitLine(imgW, imgH, width, height, fit, area, padding) {
  if (!(imgW > 0 && imgH > 0 && width > 0 && height > 0)) return "";
  let text = "The picture and its mask (" + imgW + " × " + imgH + ") are fitted together. " +
    fitDescription(imgW, imgH, width, height, fit);
  if (area === "masked") {
    text += " Only masked: the painted area and " + padding + " px around it are cut out, painted at the " +
      "model's own size and put back.";
  }
  return text;
}

/** The line under the outpaint sides: the picture's size, the result's, and where it grows. */
export function outpaintLine(width, height, outpaint) {
  if (!(width > 0 && height > 0)) return "";
  const o = cleanOutpaint(outpaint);
  const [w, h] = resultSize(width, height, o);
  if (!extendsAny(o)) return "Choose how far to extend each side: the picture is fitted to " + width + " × " + height + ".";
  const grown = SIDES.filter((side) => o[side] > 0).map((side) => side + " " + o[side] + " px").join(", ");
  return "The picture is fitted to " + width + " × " + height + " and extended (" + grown + "): the result is " +
    w + " × " + h + ".";
}
