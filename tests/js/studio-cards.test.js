// Unit tests of a model's card in the studio panel (site/static/js/pages/studio/cards.js)
// and the defaults that follow the model (defaults.js followModel, with guidance and scheduler).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cardDefaults, cardLimits, cardOf, cardPresets, findModel, fitToLimits, negativeNote, paramsForCard, schedulerChoice,
} from "../../site/static/js/pages/studio/cards.js";
import { followModel, restorable } from "../../site/static/js/pages/studio/defaults.js";
import { narrowRules } from "../../site/static/js/pages/studio/rules.js";
import { sizeLimits } from "../../site/static/js/pages/studio/sizes.js";

const SDXL_SIZES = [[1024, 1024], [1152, 896], [896, 1152], [1216, 832], [832, 1216], [1344, 768], [768, 1344]];
const SCHEDULERS = { euler: "Euler", euler_a: "Euler ancestral", dpmpp_2m: "DPM++ 2M", flow_euler: "Flow Euler" };
const SDXL = {
  id: "demo-sdxl", name: "Demo SDXL", kind: "model", format: "demo", family: "sdxl", family_label: "Stable Diffusion XL",
  native_width: 1024, native_height: 1024,
  defaults: { steps: 30, guidance: 7, scheduler: "euler", width: 1024, height: 1024 },
  schedulers: ["euler", "euler_a", "dpmpp_2m"], uses_guidance: true, uses_negative_prompt: true,
  latent_channels: 4, size_step: 8, max_side: 1536, sizes: SDXL_SIZES,
};
const SCHNELL = {
  id: "flux-schnell", name: "FLUX.1 schnell", family: "flux", family_label: "FLUX.1", variant: "schnell",
  defaults: { steps: 4, guidance: 0, scheduler: "flow_euler", width: 1024, height: 1024 },
  schedulers: ["flow_euler"], uses_guidance: false, uses_negative_prompt: false, size_step: 16, max_side: 2048,
  sizes: [[1024, 1024], [1344, 768]],
};
const RULES = {
  width: { min: 64, max: 2048, step: 8, default: 512 }, height: { min: 64, max: 2048, step: 8, default: 512 },
};
const base = (limits) => sizeLimits(narrowRules(RULES, limits), limits);

test("a model listed without a card keeps the page's rules", () => {
  const card = cardOf({ id: "big", name: "Big" });
  assert.equal(card.usesGuidance, true);
  assert.equal(card.usesNegativePrompt, true);
  assert.deepEqual(card.sizes, []);
  assert.equal(card.schedulers, null);
  const lim = base({ max_side: 768, max_pixels: 768 * 768 });
  assert.deepEqual(cardLimits(lim, card), lim);
  assert.deepEqual(schedulerChoice(card, "euler_a", SCHEDULERS).options, Object.keys(SCHEDULERS));
  assert.deepEqual(cardOf(null).sizes, []);
  assert.equal(card.editReferencePixels, null);
});

test("an editing card says at what pixels its pipeline encodes a reference (edit_reference_pixels)", () => {
  const qwenEdit = { id: "qe", edits: true, edit_reference_pixels: [1048576, 1048576] };
  assert.deepEqual(cardOf(qwenEdit).editReferencePixels, [1048576, 1048576]);
  assert.equal(cardOf({ ...qwenEdit, edit_reference_pixels: null }).editReferencePixels, null); // (Kontext)
  assert.equal(cardOf({ ...qwenEdit, edit_reference_pixels: ["x", 1] }).editReferencePixels, null);
});

test("findModel: the one asked for, else the default one, else the first", () => {
  const models = [{ id: "a" }, { id: "b", default: true }];
  assert.equal(findModel(models, "a").id, "a");
  assert.equal(findModel(models, "zzz").id, "b");
  assert.equal(findModel([{ id: "a" }], "zzz").id, "a");
  assert.equal(findModel([], "a"), null);
});

test("the card raises the largest side to its max_side, keeps the user's pixel limit and takes its step", () => {
  const user = { max_side: 1024, max_pixels: 1024 * 1024 };
  const lim = cardLimits(base(user), cardOf(SDXL));
  assert.deepEqual(lim, { min: 64, max: 1536, step: 8, maxPixels: 1024 * 1024 });
  // Never lowered: a user allowed 2048 a side keeps 2048 with a card of 1536.
  assert.equal(cardLimits(base({ max_side: 2048, max_pixels: 4e6 }), cardOf(SDXL)).max, 2048);
  // FLUX: multiples of 16, the smallest side too.
  const flux = cardLimits(base({ max_side: 1000, max_pixels: 1e6 }), cardOf(SCHNELL));
  assert.equal(flux.step, 16);
  assert.equal(flux.max, 2048);
  assert.equal(flux.min % 16, 0);
  assert.ok(flux.min >= 64);
});

test("SDXL's presets fitted to the limits: unchanged when they fit, scaled down (same shape) when not", () => {
  const roomy = cardLimits(base({ max_side: 2048, max_pixels: 2048 * 2048 }), cardOf(SDXL));
  assert.deepEqual(cardPresets(cardOf(SDXL), roomy).map((p) => p.size), SDXL_SIZES);
  assert.ok(cardPresets(cardOf(SDXL), roomy).every((p) => !p.adjusted));

  const small = cardLimits(base({ max_side: 768, max_pixels: 768 * 768 }), cardOf(SDXL));
  const presets = cardPresets(cardOf(SDXL), small);
  assert.deepEqual(presets[0].size, [768, 768]);
  assert.deepEqual(presets[0].wanted, [1024, 1024]);
  assert.equal(presets[0].adjusted, true);
  presets.forEach(({ size: [w, h], wanted }) => {
    assert.ok(w * h <= 768 * 768, w + "x" + h);
    assert.ok(w <= small.max && h <= small.max);
    assert.equal(w % 8, 0);
    assert.equal(h % 8, 0);
    assert.ok(Math.abs(w / h - wanted[0] / wanted[1]) / (wanted[0] / wanted[1]) < 0.04);
  });
  // Each size once, even when two presets fit to the same one.
  const keys = presets.map((p) => p.size.join("x"));
  assert.equal(new Set(keys).size, keys.length);
});

test("FLUX's presets are multiples of 16 once fitted", () => {
  const lim = cardLimits(base({ max_side: 1000, max_pixels: 700 * 700 }), cardOf(SCHNELL));
  cardPresets(cardOf(SCHNELL), lim).forEach(({ size: [w, h] }) => {
    assert.equal(w % 16, 0);
    assert.equal(h % 16, 0);
    assert.ok(w * h <= 700 * 700);
  });
});

test("fitToLimits keeps a size that fits and puts one that does not inside the new limits", () => {
  const flux = cardLimits(base({ max_side: 2048, max_pixels: 1024 * 1024 }), cardOf(SCHNELL));
  assert.deepEqual(fitToLimits(1024, 1024, flux), [1024, 1024]);
  assert.deepEqual(fitToLimits(1000, 600, flux), [992, 592]); // multiples of 16
  const [w, h] = fitToLimits(1344, 1344, flux);
  assert.ok(w * h <= 1024 * 1024);
  assert.equal(fitToLimits(null, 512, flux), null);
});

test("the scheduler list is the card's; a choice it lacks becomes the card's default", () => {
  const sdxl = cardOf(SDXL);
  assert.deepEqual(schedulerChoice(sdxl, "euler_a", SCHEDULERS), {
    options: ["euler", "euler_a", "dpmpp_2m"], value: "euler_a", defaultKey: "euler",
  });
  assert.equal(schedulerChoice(sdxl, "flow_euler", SCHEDULERS).value, "euler");
  const flux = schedulerChoice(cardOf(SCHNELL), "euler_a", SCHEDULERS);
  assert.deepEqual(flux.options, ["flow_euler"]);
  assert.equal(flux.value, "flow_euler");
  // Keys the page does not know are left out.
  assert.deepEqual(schedulerChoice(cardOf({ schedulers: ["euler", "nope"], defaults: {} }), "", SCHEDULERS).options, ["euler"]);
});

test("no guidance and no negative prompt are sent for a model that uses neither", () => {
  const params = { prompt: "p", negative_prompt: "blurry", guidance: 7.5, steps: 4, loras: [] };
  assert.deepEqual(paramsForCard(params, cardOf(SCHNELL)), { prompt: "p", steps: 4, loras: [] });
  assert.deepEqual(paramsForCard(params, cardOf(SDXL)), params);
  assert.equal(params.guidance, 7.5); // untouched
  assert.equal(negativeNote(cardOf(SCHNELL)), "FLUX ignores negative prompts.");
});

test("cardDefaults: the page's, the card's, then the page's per-model table", () => {
  const card = cardOf(SDXL);
  const page = { width: 512, height: 512, steps: 30, guidance: 7.5, samples: 1 };
  assert.deepEqual(cardDefaults(card, {}, page),
                   { width: 1024, height: 1024, steps: 30, guidance: 7, scheduler: "euler", samples: 1 });
  assert.equal(cardDefaults(card, { "demo-sdxl": { steps: 6 } }, page).steps, 6);
});

test("followModel: guidance and the scheduler follow the model too, where left at the old default", () => {
  const sd1 = { width: 512, height: 512, steps: 30, guidance: 7.5, scheduler: "euler_a" };
  const sdxl = { width: 1024, height: 1024, steps: 30, guidance: 7, scheduler: "euler" };
  assert.deepEqual(followModel(Object.assign({}, sd1), sd1, sdxl),
                   { width: 1024, height: 1024, guidance: 7, scheduler: "euler" });
  assert.deepEqual(followModel({ width: 512, height: 512, steps: 30, guidance: 9, scheduler: "dpmpp_2m" }, sd1, sdxl),
                   { width: 1024, height: 1024 });
  const schnell = { width: 1024, height: 1024, steps: 4, guidance: 0, scheduler: "flow_euler" };
  assert.deepEqual(followModel(Object.assign({}, sdxl), sdxl, schnell), { steps: 4, guidance: 0, scheduler: "flow_euler" });
});

test("restorable keeps the LoRAs as a list of {id, name, weight}", () => {
  const out = restorable({ steps: 8, loras: [{ id: "ink", name: "Ink", weight: 5 }, { bad: 1 }, "x"], junk: 1 });
  assert.deepEqual(out, { steps: 8, loras: [{ id: "ink", name: "Ink", weight: 2 }] });
  assert.equal("loras" in restorable({ loras: "ink" }), false);
});

test("a model without a card marks the page's default scheduler", () => {
  const choice = schedulerChoice(cardOf({ id: "big" }), "nope", SCHEDULERS, "euler_a");
  assert.equal(choice.value, "euler_a");
  assert.equal(choice.defaultKey, "euler_a");
});
