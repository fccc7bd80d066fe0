// Unit tests of site/static/js/lib/upscale.js (node --test tests/js): the request an
// "Upscale" makes and how a task's progress reads — issue 24.
import { test } from "node:test";
import assert from "node:assert/strict";
import { progressText, upscaleBody } from "../../site/static/js/lib/upscale.js";

test("the body names the image, the scale and the upscaler, and asks for a refining pass only when ticked", () => {
  const image = { id: "img1", width: 64, height: 64 };
  assert.deepEqual(upscaleBody(image, { scale: 2, upscaler: "demo-esrgan-x2", refine: false }),
    { image: "img1", scale: 2, upscaler: "demo-esrgan-x2" });
  assert.deepEqual(upscaleBody(image, { scale: 4, upscaler: "", refine: true }),
    { image: "img1", scale: 4, upscaler: "lanczos", refine: {} });
});

test("progress reads as units of the whole, then the output's size", () => {
  assert.equal(progressText({ state: "running", progress: { step: 3, total: 19 } }), "Upscaling… 3 of 19");
  assert.equal(progressText({ state: "running", progress: {} }), "Upscaling…");
  assert.equal(progressText({ state: "done", width: 128, height: 96 }), "Done: 128 × 96.");
  assert.match(progressText({ state: "canceled" }), /refunded/);
  assert.equal(progressText({ state: "failed", error: "The upscaler is gone." }), "The upscaler is gone.");
  assert.equal(progressText({ state: "queued", position: 2 }), "Waiting in the queue: position 2");
  assert.equal(progressText({ state: "queued", position: null }), "Waiting in the queue…");
});
