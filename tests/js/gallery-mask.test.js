// Unit tests of site/static/js/pages/gallery/maskoverlay.js (node --test tests/js): an
// inpainted image's settings in the lightbox, and where its mask lies over the picture — issue 23.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inpaintOf, inpaintRows, overlayGeometry, selectPixels } from "../../site/static/js/pages/gallery/maskoverlay.js";

const INPAINT = { mask_blur: 4, inpaint_area: "masked", inpaint_padding: 32, masked_content: "latent_noise",
  mask_invert: true, outpaint: { left: 0, right: 64, top: 0, bottom: 0 } };

test("the settings come from the task's inpaint, or flat, and only for an inpainted image", () => {
  const nested = inpaintOf({ mask: "m1", inpaint: INPAINT, strength: 0.75 });
  assert.equal(nested.mask, "m1");
  assert.deepEqual(nested.outpaint, { left: 0, right: 64, top: 0, bottom: 0 });
  const flat = inpaintOf({ mask: null, inpaint: null, ...INPAINT });
  assert.equal(flat.mask_blur, 4);
  assert.equal(flat.mask, null); // outpainted without a mask still counts
  assert.equal(inpaintOf({ init_image: "i", strength: 0.5 }), null);
  assert.equal(inpaintOf({ inpaint: { ...INPAINT, outpaint: { right: 0 } } }), null);
  assert.equal(inpaintOf(null), null);
});

test("the details name the settings as A1111 does", () => {
  assert.deepEqual(inpaintRows(inpaintOf({ mask: "m1", inpaint: { ...INPAINT, noise_multiplier: 0.9 } })), [
    ["Mask blur", "4 px"], ["Inpaint area", "Only masked (padding 32 px)"], ["Masked content", "Latent noise"],
    ["Invert", "Yes"], ["Noise multiplier", "0.9"], ["Outpaint", "right 64 px"],
  ]);
  const plain = inpaintRows(inpaintOf({ mask: "m1", inpaint: { ...INPAINT, inpaint_area: "whole", mask_invert: false,
    masked_content: "original", noise_multiplier: 1, outpaint: {} } }));
  assert.deepEqual(plain, [["Mask blur", "4 px"], ["Inpaint area", "Whole picture"], ["Masked content", "Original"],
    ["Invert", "No"], ["Outpaint", "None"]]);
  assert.deepEqual(inpaintRows(null), []);
});

test("the mask is fitted into the picture less the outpaint, as init_fit says", () => {
  // 64 px outpainted on the right of a 128×64 picture: the start picture is the left 64×64
  const wide = overlayGeometry({ width: 128, height: 64, outpaint: { right: 64 }, fit: "cover", maskWidth: 32, maskHeight: 32 });
  assert.deepEqual(wide.inner, { x: 0, y: 0, w: 64, h: 64 });
  assert.deepEqual(wide.draw, { x: 0, y: 0, w: 64, h: 64 });
  // a 2:1 mask on a square picture: cover crops the sides, contain letterboxes
  const cover = overlayGeometry({ width: 64, height: 64, fit: "cover", maskWidth: 100, maskHeight: 50 });
  assert.deepEqual(cover.draw, { x: -32, y: 0, w: 128, h: 64 });
  const contain = overlayGeometry({ width: 64, height: 64, fit: "contain", maskWidth: 100, maskHeight: 50 });
  assert.deepEqual(contain.draw, { x: 0, y: 16, w: 64, h: 32 });
});

test("the overlay tints the repainted pixels: the mask inside, everything outpainted", () => {
  // a 4×1 picture, 1 px outpainted on the right; the drawn mask: white, black, white (then the margin)
  const pixels = () => new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255, 200, 200, 200, 255, 0, 0, 0, 255]);
  const inner = { x: 0, y: 0, w: 3, h: 1 };
  const layout = { inner, draw: inner };
  const tint = [1, 2, 3, 4];
  const on = (data) => [0, 1, 2, 3].map((p) => data[p * 4 + 3] === 4);
  assert.deepEqual(on(selectPixels(pixels(), 4, 1, layout, false, tint)), [true, false, true, true]);
  assert.deepEqual(on(selectPixels(pixels(), 4, 1, layout, true, tint)), [false, true, false, true]);
  const data = selectPixels(pixels(), 4, 1, layout, false, tint);
  assert.deepEqual(Array.from(data.slice(0, 8)), [1, 2, 3, 4, 0, 0, 0, 0]);
  // "contain": the padding beside the drawn mask is kept, inverted or not (the worker
  // inverts the mask, then fits it)
  const letterboxed = { inner, draw: { x: 1, y: 0, w: 2, h: 1 } };
  assert.deepEqual(on(selectPixels(pixels(), 4, 1, letterboxed, true, tint)), [false, true, false, true]);
});
