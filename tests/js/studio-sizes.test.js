// Unit tests of the studio's size fitting (site/static/js/pages/studio/sizes.js, rules.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  enforceSizeLimits, fitSize, floorTo, parseRatio, ratioPossible, scalePossible, sizeForRatio, sizeForScale,
  sizeLimits, snap,
} from "../../site/static/js/pages/studio/sizes.js";
import { narrowRules } from "../../site/static/js/pages/studio/rules.js";

const RULES = {
  width: { min: 64, max: 1024, step: 8, default: 512 },
  height: { min: 64, max: 1024, step: 8, default: 512 },
  steps: { min: 1, max: 150, step: 1, default: 30 },
  samples: { min: 1, max: 8, step: 1, default: 1 },
  guidance: { min: 0, max: 30, step: 0.5, default: 7.5 },
};
const USER = { max_side: 768, max_pixels: 768 * 768, max_samples: 4 };
const lim = sizeLimits(narrowRules(RULES, USER), USER);

test("narrowRules lowers each maximum to the user's limit, never raises it", () => {
  const narrowed = narrowRules(RULES, { max_side: 768, max_samples: 12, max_steps: 50 });
  assert.equal(narrowed.width.max, 768);
  assert.equal(narrowed.height.max, 768);
  assert.equal(narrowed.samples.max, 8); // the rule's 8 is lower than the limit
  assert.equal(narrowed.steps.max, 50);
  assert.equal(narrowed.guidance.max, 30); // no limit for guidance
  assert.equal(RULES.width.max, 1024); // the rules themselves are untouched
  assert.deepEqual(narrowRules(RULES, {}).width, RULES.width);
  assert.equal(narrowRules({ samples: { min: 1, max: null } }, { max_samples: 4 }).samples.max, 4);
});

test("sizeLimits: side, step and pixels from rules and limits", () => {
  assert.deepEqual(lim, { min: 64, max: 768, step: 8, maxPixels: 589824 });
  // Without a pixel limit, the square of the largest side.
  assert.equal(sizeLimits(narrowRules(RULES, { max_side: 512 }), { max_side: 512 }).maxPixels, 512 * 512);
});

test("snap and floorTo work in multiples of the step", () => {
  assert.equal(snap(100, 8), 104);
  assert.equal(snap(99, 8), 96);
  assert.equal(floorTo(103.9, 8), 96);
  assert.equal(floorTo(104, 8), 104);
  assert.equal(snap(17, 16), 16);
  assert.deepEqual(parseRatio("16:9"), [16, 9]);
});

test("fitSize keeps a size that fits, and shrinks one that does not, keeping its shape", () => {
  assert.deepEqual(fitSize(512, 512, lim), [512, 512]);
  assert.deepEqual(fitSize(1024, 1024, lim), [768, 768]);
  const [w, h] = fitSize(1536, 1024, lim); // 3:2, too wide
  assert.ok(w <= 768 && h <= 768 && w * h <= lim.maxPixels);
  assert.equal(w % 8, 0);
  assert.equal(h % 8, 0);
  assert.ok(Math.abs(w / h - 1.5) < 0.02, w + "x" + h);
  // Never below the smallest side.
  assert.deepEqual(fitSize(64, 4096, lim), [64, 768]);
});

test("fitSize stays within the pixel limit when the sides alone would allow more", () => {
  const tight = { min: 64, max: 1024, step: 8, maxPixels: 512 * 512 };
  const [w, h] = fitSize(1024, 1024, tight);
  assert.ok(w * h <= tight.maxPixels, w + "x" + h);
  assert.deepEqual([w, h], [512, 512]);
  const [a, b] = fitSize(1024, 576, tight); // 16:9
  assert.ok(a * b <= tight.maxPixels && a % 8 === 0 && b % 8 === 0, a + "x" + b);
});

test("sizeForRatio: about the same area in a new shape", () => {
  assert.deepEqual(sizeForRatio(1, 1, 512 * 512, lim), [512, 512]);
  const [w, h] = sizeForRatio(2, 3, 512 * 512, lim);
  assert.ok(Math.abs(w / h - 2 / 3) < 0.02 && w % 8 === 0 && h % 8 === 0, w + "x" + h);
  assert.ok(Math.abs(w * h - 512 * 512) / (512 * 512) < 0.05);
  // Too much area for the limits: fitted.
  const [a, b] = sizeForRatio(16, 9, 1024 * 1024, lim);
  assert.ok(a <= 768 && b <= 768 && a * b <= lim.maxPixels);
});

test("ratio and scale presets are possible only where the limits can hold them", () => {
  assert.equal(ratioPossible(16, 9, 512 * 512, lim), true);
  assert.equal(ratioPossible(9, 16, 512 * 512, lim), true);
  // With the smallest side just under the largest, a long shape cannot be made.
  const narrow = { min: 64, max: 96, step: 8, maxPixels: 96 * 96 };
  assert.equal(ratioPossible(1, 1, 96 * 96, narrow), true);
  assert.equal(ratioPossible(16, 9, 96 * 96, narrow), false);
  assert.equal(scalePossible(512, lim), true);
  assert.equal(scalePossible(768, lim), true);
  assert.equal(scalePossible(1024, lim), false);
  assert.equal(scalePossible(768, { min: 64, max: 768, step: 8, maxPixels: 512 * 768 }), false);
});

test("sizeForScale keeps the ratio and says when it had to adjust", () => {
  assert.deepEqual(sizeForScale(512, 1, lim), { size: [512, 512], wanted: [512, 512], adjusted: false });
  const wide = sizeForScale(768, 16 / 9, lim); // 1024 × 576 wanted: over the side
  assert.equal(wide.adjusted, true);
  assert.deepEqual(wide.wanted, [1024, 576]);
  assert.ok(wide.size[0] <= 768 && wide.size[1] <= 768);
});

test("enforceSizeLimits clamps the changed side to the largest side", () => {
  const r = enforceSizeLimits("width", { width: 1000, height: 512 }, lim);
  assert.deepEqual(r.set, { width: 768 });
  assert.equal(r.touched, true);
  assert.equal(r.hint, "Width is at most 768 px.");
});

test("enforceSizeLimits lowers the other side to stay within the pixels", () => {
  const pixels = { min: 64, max: 768, step: 8, maxPixels: 512 * 512 };
  const r = enforceSizeLimits("height", { width: 512, height: 768 }, pixels);
  assert.deepEqual(r.set, { width: 336 });
  assert.equal(r.touched, true);
  assert.equal(r.hint, "Width lowered to 336 px: 768 × 336 stays within 262,144 pixels.");
  assert.ok(768 * r.set.width <= pixels.maxPixels);
});

test("enforceSizeLimits lowers the changed side too when the smallest other side is too much", () => {
  const tiny = { min: 64, max: 768, step: 8, maxPixels: 256 * 64 };
  const r = enforceSizeLimits("width", { width: 768, height: 64 }, tiny);
  assert.deepEqual(r.set, { width: 256, height: 64 });
  assert.ok(r.set.width * r.set.height <= tiny.maxPixels);
});

test("enforceSizeLimits leaves a fitting size alone and resets the hint", () => {
  const r = enforceSizeLimits("width", { width: 512, height: 512 }, lim);
  assert.deepEqual(r, { set: {}, hint: "", touched: false });
  // An empty field: nothing to say.
  assert.deepEqual(enforceSizeLimits("width", { width: null, height: 512 }, lim), { set: {}, hint: null, touched: false });
  // Labels come from the page.
  const labelled = enforceSizeLimits("height", { width: 64, height: 900 }, lim, { width: "W", height: "H" });
  assert.equal(labelled.hint, "H is at most 768 px.");
});
