/* Daydream gallery — an inpainted image's settings and its mask, for the lightbox: the
 * details panel lists the settings (A1111's names: Mask blur, Inpaint area, Masked
 * content, Invert, Outpaint), and "Show mask" lays the area that was repainted over the
 * picture, tinted.
 *
 * The image's metadata (GET /api/v1/images/{id}/metadata) holds its task's parameters:
 * "mask" (the mask's image id: white = repaint, at the start picture's size) and "inpaint"
 * {mask_blur, inpaint_area, inpaint_padding, masked_content, mask_invert, noise_multiplier,
 * outpaint {left, right, top, bottom}}; the settings may also be flat in the metadata.
 * The overlay is drawn the way the worker reads the mask: fitted into the picture less
 * the outpaint as "init_fit" says (cover: cropped, contain: letterboxed), inverted when
 * asked, and the outpainted margins added (they are always repainted).
 *
 * Pure, for the tests (node --test tests/js): inpaintOf(meta), inpaintRows(settings),
 * overlayGeometry(...), selectPixels(...). maskOverlay(meta, size) draws it (a canvas) and
 * resolves to a PNG data URL, or null when the image was not inpainted. */

const KEYS = ["mask_blur", "inpaint_area", "inpaint_padding", "masked_content", "mask_invert",
  "noise_multiplier", "outpaint"];
const SIDES = ["left", "right", "top", "bottom"];
export const INPAINT_AREAS = { whole: "Whole picture", masked: "Only masked" };
export const MASKED_CONTENTS = {
  original: "Original", fill: "Fill", latent_noise: "Latent noise", latent_nothing: "Latent nothing",
};
export const TINT = [255, 64, 160, 115]; // RGBA of the repainted area in the overlay

/** The inpaint settings of an image's metadata (outpaint always has its four sides), or
 * null when it was not inpainted (no mask and nothing outpainted). */
export function inpaintOf(meta) {
  if (!meta || typeof meta !== "object") return null;
  const source = meta.inpaint && typeof meta.inpaint === "object" ? meta.inpaint : meta;
  const settings = {};
  for (const key of KEYS) {
    if (source[key] !== undefined && source[key] !== null) settings[key] = source[key];
  }
  const outpaint = settings.outpaint && typeof settings.outpaint === "object" ? settings.outpaint : {};
  settings.outpaint = Object.fromEntries(SIDES.map((side) => [side, Math.max(0, Number(outpaint[side]) || 0)]));
  const outpainting = SIDES.some((side) => settings.outpaint[side] > 0);
  if (!meta.mask && !outpainting) return null;
  settings.mask = meta.mask || null;
  return settings;
}

/** "right 64 px, top 32 px", or "" when nothing was outpainted. */
export function outpaintText(outpaint) {
  return SIDES.filter((side) => outpaint && outpaint[side] > 0)
    .map((side) => side + " " + outpaint[side] + " px").join(", ");
}

/** The details panel's rows: [label, text]. */
export function inpaintRows(settings) {
  if (!settings) return [];
  const rows = [];
  if (settings.mask_blur !== undefined) rows.push(["Mask blur", settings.mask_blur + " px"]);
  if (settings.inpaint_area !== undefined) {
    const area = INPAINT_AREAS[settings.inpaint_area] || String(settings.inpaint_area);
    const padded = settings.inpaint_area === "masked" && settings.inpaint_padding !== undefined;
    rows.push(["Inpaint area", padded ? area + " (padding " + settings.inpaint_padding + " px)" : area]);
  }
  if (settings.masked_content !== undefined) {
    rows.push(["Masked content", MASKED_CONTENTS[settings.masked_content] || String(settings.masked_content)]);
  }
  if (settings.mask) rows.push(["Invert", settings.mask_invert ? "Yes" : "No"]);
  const noise = Number(settings.noise_multiplier);
  if (settings.noise_multiplier !== undefined && Number.isFinite(noise) && noise !== 1) {
    rows.push(["Noise multiplier", String(noise)]);
  }
  rows.push(["Outpaint", outpaintText(settings.outpaint) || "None"]);
  return rows;
}

/** Where the mask goes in a picture of width × height: `inner` is the start picture's
 * place (the picture less the outpaint), `draw` the mask's rectangle (it may reach past
 * `inner` with "cover": the part outside is cut off). */
export function overlayGeometry({ width, height, outpaint, fit, maskWidth, maskHeight }) {
  const o = outpaint || {};
  const inner = { x: o.left || 0, y: o.top || 0 };
  inner.w = Math.max(1, width - inner.x - (o.right || 0));
  inner.h = Math.max(1, height - inner.y - (o.bottom || 0));
  let draw = { ...inner };
  if (maskWidth > 0 && maskHeight > 0) {
    const scale = (fit === "contain" ? Math.min : Math.max)(inner.w / maskWidth, inner.h / maskHeight);
    const w = maskWidth * scale;
    const h = maskHeight * scale;
    draw = { x: inner.x + (inner.w - w) / 2, y: inner.y + (inner.h - h) / 2, w, h };
  }
  return { width, height, inner, draw };
}

/** Turn RGBA pixels holding the drawn mask (white = repaint, black elsewhere) into the
 * overlay, in place: a repainted pixel gets `tint`, the rest are clear. Where the mask
 * was drawn (`draw` within `inner`) it decides, inverted if `invert` (the worker inverts
 * before fitting); the rest of `inner` (the padding of "contain") is kept; outside
 * `inner` (the outpaint) all is repainted. */
export function selectPixels(data, width, height, { inner, draw }, invert, tint = TINT) {
  const within = (box, x, y) => x + 0.5 >= box.x && x + 0.5 < box.x + box.w && y + 0.5 >= box.y && y + 0.5 < box.y + box.h;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      let on = true;
      if (within(inner, x, y)) on = within(draw, x, y) && (data[i] >= 128) !== !!invert;
      data[i] = on ? tint[0] : 0;
      data[i + 1] = on ? tint[1] : 0;
      data[i + 2] = on ? tint[2] : 0;
      data[i + 3] = on ? tint[3] : 0;
    }
  }
  return data;
}

function loadPicture(src) {
  return new Promise((resolve, reject) => {
    const picture = new Image();
    picture.onload = () => resolve(picture);
    picture.onerror = () => reject(new Error("the mask could not be loaded"));
    picture.src = src;
  });
}

/** The image's mask laid out on a picture of size {width, height}, as a PNG data URL;
 * null when it was not inpainted. Rejects when the mask cannot be loaded (deleted). */
export async function maskOverlay(meta, size) {
  const settings = inpaintOf(meta);
  if (!settings || !(size.width > 0 && size.height > 0)) return null;
  const mask = settings.mask ? await loadPicture("/api/v1/images/" + encodeURIComponent(settings.mask) + "/full") : null;
  const layout = overlayGeometry({
    width: size.width, height: size.height, outpaint: settings.outpaint, fit: meta.init_fit,
    maskWidth: mask ? mask.naturalWidth : 0, maskHeight: mask ? mask.naturalHeight : 0,
  });
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  const context = canvas.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, size.width, size.height);
  if (mask) {
    const { inner, draw } = layout;
    context.save();
    context.beginPath();
    context.rect(inner.x, inner.y, inner.w, inner.h);
    context.clip();
    context.drawImage(mask, draw.x, draw.y, draw.w, draw.h);
    context.restore();
  }
  const pixels = context.getImageData(0, 0, size.width, size.height);
  selectPixels(pixels.data, size.width, size.height, layout, mask ? settings.mask_invert : false);
  context.putImageData(pixels, 0, 0);
  return canvas.toDataURL("image/png");
}
