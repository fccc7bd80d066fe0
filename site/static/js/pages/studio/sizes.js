/* Daydream studio — width × height inside the limits: the largest side, the pixel count,
 * multiples of the step. Pure: every function takes the limits as an argument,
 *   lim = {min, max, step, maxPixels}   (sizeLimits builds it from the rules and limits).
 * Unit-tested (tests/js/studio-sizes.test.js). */
import { formatNumber } from "../../lib/format.js";

/** The size limits of narrowed rules (rules.js) and the user's limits. */
export function sizeLimits(rules, limits) {
  const w = rules.width;
  const h = rules.height || rules.width;
  const max = Math.min(w.max, h.max);
  return {
    min: Math.max(w.min, h.min),
    max,
    step: Math.max(w.step, h.step),
    maxPixels: (limits && limits.max_pixels) || max * max,
  };
}

/** The nearest multiple of step. */
export function snap(value, step) { return Math.round(value / step) * step; }

/** The multiple of step at or below value. */
export function floorTo(value, step) { return Math.floor(value / step) * step; }

/** "2:3" → [2, 3]. */
export function parseRatio(text) { return String(text).split(":").map(Number); }

/** The largest size of ratio w:h, no larger than w × h, that fits the limits (multiples of the step). */
export function fitSize(w, h, lim) {
  const scale = Math.min(1, lim.max / w, lim.max / h, Math.sqrt(lim.maxPixels / (w * h)));
  let fw = Math.max(lim.min, floorTo(w * scale, lim.step));
  let fh = Math.max(lim.min, floorTo(h * scale, lim.step));
  while (fw * fh > lim.maxPixels && (fw > lim.min || fh > lim.min)) {
    if (fw >= fh && fw > lim.min) fw -= lim.step; else fh -= lim.step;
  }
  return [Math.min(fw, lim.max), Math.min(fh, lim.max)];
}

/** A size of ratio a:b with about `area` pixels, inside the limits. */
export function sizeForRatio(a, b, area, lim) {
  const w = Math.sqrt((area * a) / b);
  const h = w * (b / a);
  return fitSize(Math.max(lim.min, snap(w, lim.step)), Math.max(lim.min, snap(h, lim.step)), lim);
}

/** Whether the limits can hold a:b at about `area` pixels (within 4 %). */
export function ratioPossible(a, b, area, lim) {
  const size = sizeForRatio(a, b, area, lim);
  const ratio = a / b;
  return Math.abs(size[0] / size[1] - ratio) / ratio < 0.04;
}

/** Whether about s × s pixels (a scale preset) fits the limits. */
export function scalePossible(s, lim) {
  return s <= lim.max && s * s <= lim.maxPixels;
}

/** The size of about s × s pixels at `ratio` (width / height), fitted: {size, wanted, adjusted}. */
export function sizeForScale(s, ratio, lim) {
  const wanted = [
    Math.max(lim.min, snap(s * Math.sqrt(ratio), lim.step)),
    Math.max(lim.min, snap(s / Math.sqrt(ratio), lim.step)),
  ];
  const size = fitSize(wanted[0], wanted[1], lim);
  return { size, wanted, adjusted: size[0] !== wanted[0] || size[1] !== wanted[1] };
}

/**
 * The side just changed (`changed`: "width" or "height") is clamped to the largest side;
 * when width × height would pass the pixel limit the other side is lowered (or, when even
 * the smallest other side is too much, this one). `values`: {width, height}, numbers or null.
 * Returns {set: {field: value} to put in the form, hint: the text for the size hint
 * ("" for the default one, null to leave it), touched: whether a value changed}.
 */
export function enforceSizeLimits(changed, values, lim, labels = { width: "Width", height: "Height" }) {
  const other = changed === "width" ? "height" : "width";
  let a = values[changed];
  const b = values[other];
  const set = {};
  const notes = [];
  if (a !== null && a > lim.max) {
    a = lim.max;
    set[changed] = a;
    notes.push(labels[changed] + " is at most " + lim.max + " px.");
  }
  if (a !== null && b !== null && a > 0 && a * b > lim.maxPixels) {
    const lowered = Math.max(lim.min, floorTo(lim.maxPixels / a, lim.step));
    if (lowered * a > lim.maxPixels) {
      a = Math.max(lim.min, floorTo(lim.maxPixels / lowered, lim.step));
      set[changed] = a;
    }
    set[other] = lowered;
    notes.push(labels[other] + " lowered to " + lowered + " px: " + a + " × " + lowered +
               " stays within " + formatNumber(lim.maxPixels) + " pixels.");
  }
  let hint = null;
  if (notes.length) hint = notes.join(" ");
  else if (a !== null && b !== null) hint = "";
  return { set, hint, touched: notes.length > 0 };
}

/** The allowed size nearest to a picture's shape (imgW : imgH) at about `area` pixels:
 * "Match its shape" after choosing an init image. [width, height], multiples of the step. */
export function matchShape(imgW, imgH, area, lim) {
  if (!(imgW > 0 && imgH > 0)) return null;
  return sizeForRatio(imgW, imgH, area > 0 ? area : lim.min * lim.min, lim);
}

/** Whether a picture of imgW × imgH already has the shape of w × h (within 1 %). */
export function sameShape(imgW, imgH, w, h) {
  return Math.abs((imgW / imgH) / (w / h) - 1) < 0.01;
}

/** How an init image of imgW × imgH is fitted to w × h: "cover" (scaled to fill, the
 * overflow cropped, centred) or "contain" (scaled to fit, the rest padded with black).
 * A picture smaller than it needs to be says how much it is enlarged (its detail does not grow). */
export function fitDescription(imgW, imgH, w, h, fit) {
  if (!(imgW > 0 && imgH > 0 && w > 0 && h > 0)) return "";
  const target = w + " × " + h;
  let text;
  if (sameShape(imgW, imgH, w, h)) {
    text = "The picture has the shape of " + target + ": it is scaled to it, nothing is cut or added.";
  } else {
    const wider = imgW / imgH > w / h;
    text = fit === "contain"
      ? "Fitted inside " + target + ": the whole picture is kept and its " +
        (wider ? "top and bottom" : "left and right") + " are padded with black."
      : "Cropped to fill " + target + ": the picture is scaled to cover it and its " +
        (wider ? "left and right edges" : "top and bottom edges") + " are cut off.";
  }
  const scale = fitScale(imgW, imgH, w, h, fit);
  if (scale > 1.05) {
    text += " It is enlarged " + (Math.round(scale * 10) / 10) + "× (" + imgW + " × " + imgH +
      " pixels): a larger picture keeps more detail.";
  }
  return text;
}

/** How much a picture of imgW × imgH is scaled to be fitted to w × h ("cover" or "contain"). */
export function fitScale(imgW, imgH, w, h, fit) {
  const sx = w / imgW;
  const sy = h / imgH;
  return fit === "contain" ? Math.min(sx, sy) : Math.max(sx, sy);
}

/** The size a picture is uploaded at: as it is, or scaled down (shape kept) to the
 * user's pixel limit, the largest area any task of theirs can have. The panel's size at
 * the time does not matter: the server keeps the upload and fits it at task time. */
export function uploadSize(imgW, imgH, maxPixels) {
  if (!(imgW > 0 && imgH > 0)) return null;
  if (!(maxPixels > 0) || imgW * imgH <= maxPixels) return [imgW, imgH];
  const scale = Math.sqrt(maxPixels / (imgW * imgH));
  let w = Math.max(1, Math.floor(imgW * scale));
  let h = Math.max(1, Math.floor(imgH * scale));
  while (w * h > maxPixels && (w > 1 || h > 1)) {
    if (w >= h) w--; else h--;
  }
  return [w, h];
}
