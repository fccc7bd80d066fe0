// Unit tests of the studio panel's pure helpers: matching an init image's shape and saying
// how it is fitted (sizes.js), the cost line's words (cost.js), the queue-full line
// (messages.js), the per-model defaults and the kept panel (defaults.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { fitDescription, fitScale, matchShape, sameShape, uploadSize } from "../../site/static/js/pages/studio/sizes.js";
import { costWords } from "../../site/static/js/pages/studio/cost.js";
import { capText, retryText } from "../../site/static/js/pages/studio/messages.js";
import { defaultsFor, followModel, panelKey, restorable } from "../../site/static/js/pages/studio/defaults.js";

const lim = { min: 64, max: 768, step: 8, maxPixels: 768 * 768 };

test("matchShape: a 600 × 400 picture at about 256 × 256 pixels becomes 312 × 208", () => {
  assert.deepEqual(matchShape(600, 400, 256 * 256, lim), [312, 208]);
  assert.deepEqual(matchShape(400, 600, 256 * 256, lim), [208, 312]);
});

test("matchShape stays within the limits and on the step", () => {
  for (const [w, h, area] of [[600, 400, 512 * 512], [4000, 1000, 768 * 768], [100, 3000, 512 * 512], [257, 255, 300 * 300]]) {
    const [mw, mh] = matchShape(w, h, area, lim);
    assert.ok(mw >= lim.min && mh >= lim.min && mw <= lim.max && mh <= lim.max, `${w}x${h}: ${mw}x${mh}`);
    assert.ok(mw * mh <= lim.maxPixels);
    assert.equal(mw % lim.step, 0);
    assert.equal(mh % lim.step, 0);
  }
  // Nearly square stays square-ish; an area close to the current one.
  const [a, b] = matchShape(600, 400, 512 * 512, lim);
  assert.ok(Math.abs(a * b - 512 * 512) / (512 * 512) < 0.05);
  assert.ok(Math.abs(a / b - 1.5) < 0.03);
  assert.equal(matchShape(0, 400, 512 * 512, lim), null);
});

test("fitDescription says how a picture of another shape is fitted", () => {
  assert.match(fitDescription(600, 400, 256, 256, "cover"), /^Cropped to fill 256 × 256: .*left and right edges are cut off/);
  assert.match(fitDescription(600, 400, 256, 256, "contain"), /^Fitted inside 256 × 256: .*top and bottom are padded/);
  assert.match(fitDescription(400, 600, 256, 256, "contain"), /left and right are padded/);
  assert.match(fitDescription(400, 600, 256, 256, "cover"), /top and bottom edges are cut off/);
  assert.match(fitDescription(600, 400, 312, 208, "cover"), /has the shape of 312 × 208/);
  assert.ok(sameShape(256, 171, 312, 208));
  assert.equal(fitDescription(0, 0, 256, 256, "cover"), "");
});

test("fitDescription says when a small picture is enlarged, and by how much", () => {
  // 256 × 192 (what a 640 × 480 picture became at 256² before) covering 640 × 448: 2.5×.
  assert.match(fitDescription(256, 192, 640, 448, "cover"), /enlarged 2\.5× \(256 × 192 pixels\)/);
  assert.doesNotMatch(fitDescription(640, 480, 640, 448, "cover"), /enlarged/);
  assert.doesNotMatch(fitDescription(640, 480, 256, 256, "contain"), /enlarged/);
  assert.equal(fitScale(640, 480, 640, 448, "cover"), 1);
  assert.equal(fitScale(640, 480, 256, 256, "contain"), 0.4);
});

test("uploadSize keeps a picture within the pixel limit whatever the panel's size, else scales it to the limit", () => {
  assert.deepEqual(uploadSize(640, 480, 768 * 768), [640, 480]);
  const [w, h] = uploadSize(4000, 3000, 768 * 768);
  assert.ok(w * h <= 768 * 768, `${w}x${h}`);
  assert.ok(w * h > 0.99 * 768 * 768, `${w}x${h}`);
  assert.ok(Math.abs(w / h - 4 / 3) < 0.01);
  assert.deepEqual(uploadSize(640, 480, 0), [640, 480]);
  assert.equal(uploadSize(0, 480, 768 * 768), null);
});

test("costWords: the unit, or what to do when the cost cannot be worked out", () => {
  assert.equal(costWords(1), "token");
  assert.equal(costWords(3), "tokens");
  assert.equal(costWords(0), "tokens");
  assert.equal(costWords(null), "unknown: fix the fields above");
});

test("retryText says once that nothing was charged, and when to try again", () => {
  const server = "The queue is full; try again shortly. Nothing was charged.";
  const text = retryText(server, 15);
  assert.equal(text, "The queue is full. Nothing was charged; try again in 15 s.");
  assert.equal(text.match(/Nothing was charged/g).length, 1);
  assert.equal(text.match(/try again/gi).length, 1);
  const mine = retryText("You have 2 tasks waiting already, the most allowed; submit this one when one of them starts. Nothing was charged.", 0);
  assert.equal(mine, "You have 2 tasks waiting already, the most allowed; submit this one when one of them starts. " +
    "Nothing was charged; you can try again now.");
  assert.equal(retryText("Too many requests", 3), "Too many requests. Nothing was charged; try again in 3 s.");
  assert.equal(retryText("", 0), "The queue is full right now. Nothing was charged; you can try again now.");
});

test("defaultsFor: a model's own defaults over the page's", () => {
  const page = { width: 512, height: 512, steps: 30, guidance: 7.5 };
  const models = { demo: { width: 256, height: 256, steps: 8, guidance: 7.5 } };
  assert.deepEqual(defaultsFor(models, page, "demo"), { width: 256, height: 256, steps: 8, guidance: 7.5 });
  assert.deepEqual(defaultsFor(models, page, "real"), page);
});

test("followModel changes only the fields left at the old model's default", () => {
  const demo = { width: 256, height: 256, steps: 8 };
  const real = { width: 512, height: 512, steps: 30 };
  assert.deepEqual(followModel({ width: 256, height: 256, steps: 8 }, demo, real), { width: 512, height: 512, steps: 30 });
  assert.deepEqual(followModel({ width: 256, height: 320, steps: 12 }, demo, real), { width: 512 });
  assert.deepEqual(followModel({ width: 512, height: 512, steps: 30 }, real, real), {});
});

test("panelKey is per user; restorable keeps only the panel's fields", () => {
  assert.equal(panelKey(7), "studio.panel.7");
  assert.notEqual(panelKey(7), panelKey(8));
  assert.equal(panelKey(null), null);
  assert.deepEqual(restorable({ prompt: "a fox", steps: 12, evil: "x", seed: null, width: NaN }), { prompt: "a fox", steps: 12 });
  assert.deepEqual(restorable("nonsense"), {});
});

test("an image cap's 429 says when it resets in its own words, with no countdown of seconds", () => {
  const server = "You have made 20 images today; your class allows 20; more from 00:00";
  assert.equal(capText(server), server + ". Nothing was charged.");
  assert.equal(capText(""), "You have made as many images as you may for now. Nothing was charged.");
});
