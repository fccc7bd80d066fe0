// Unit tests of the times the studio shows (site/static/js/pages/studio/eta.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ESTIMATING, cardEta, describeEstimate, lineWait, waitLeft } from "../../site/static/js/pages/studio/eta.js";
import { eventToPatch, mergeTask } from "../../site/static/js/pages/studio/merge.js";

test("a running card at step 0 shows the worker's estimate, never a made-up second", () => {
  assert.equal(cardEta({ state: "running", progress: { step: 0, total: 20 }, eta_s: 58 }), "about 58 s left");
  // No live ETA yet: the server's run estimate from the task JSON.
  assert.equal(cardEta({ state: "running", progress: { step: 0, total: 20 }, eta_s: null, run_s: 16 }), "about 16 s left");
  // Nothing measured on this server: say so.
  assert.equal(cardEta({ state: "running", progress: { step: 0, total: 20 }, eta_s: null, run_s: null }), ESTIMATING);
  assert.equal(cardEta({ state: "running", progress: { step: 3, total: 20 } }), ESTIMATING);
});

test("a queued card shows the estimate given at submit; final cards show none", () => {
  assert.equal(cardEta({ state: "queued", eta_s: null, estimate: { eta_s: 30, wait_s: 20, run_s: 10 } }), "about 30 s left");
  assert.equal(cardEta({ state: "queued", eta_s: null }), "");
  assert.equal(cardEta({ state: "done", eta_s: 3 }), "");
  assert.equal(cardEta(null), "");
});

test("the submit answer's estimate survives the queue's events, which carry no ETA", () => {
  let task = mergeTask(undefined, { id: "t", state: "queued", eta_s: null, run_s: 9, estimate: { eta_s: 12 } });
  task = mergeTask(task, eventToPatch({ id: "t", state: "queued", position: 1, step: 0, total: 4, eta_s: null }));
  assert.equal(cardEta(task), "about 12 s left");
  task = mergeTask(task, eventToPatch({ id: "t", state: "running", step: 0, total: 4, eta_s: 9.4 }));
  assert.equal(cardEta(task), "about 9 s left");
});

test("the estimate line counts its wait down between answers", () => {
  assert.equal(waitLeft(10, 3), 7);
  assert.equal(waitLeft(10, 30), 0);
  assert.equal(waitLeft(null, 3), null);
  const data = { cost: 1, position: 1, wait_s: 21, run_s: 5, eta_s: 26 };
  assert.equal(describeEstimate(data).text, "≈ 21 s to wait, 5 s to run");
  assert.equal(describeEstimate(data, 6).text, "≈ 15 s to wait, 5 s to run");
  assert.match(describeEstimate({ position: 1, eta_s: null }).text, /No estimate yet/);
  assert.equal(describeEstimate({ position: 3, eta_s: 40 }, 10).text, "≈ 30 s until it is done");
});

test("the line's wait follows what our running cards show between answers", () => {
  // The server counted 12 s for our running task t, plus 5 s queued ahead.
  const data = { position: 2, wait_s: 17, run_s: 3, eta_s: 20, running: { t: 12 } };
  assert.equal(lineWait(data, 0, () => 12), 17);
  // 2 s later the card says 3 s left (it ran faster than estimated): 3 + 5.
  assert.equal(lineWait(data, 2, (id) => (id === "t" ? 3 : null)), 8);
  // The task finished: only what is queued ahead is left.
  assert.equal(lineWait(data, 2, () => null), 5);
  // Without live numbers: counted down.
  assert.equal(lineWait(data, 2), 15);
  assert.equal(lineWait({ wait_s: null, running: { t: 1 } }, 0, () => 4), null);
  assert.equal(describeEstimate(data, 2, () => 3).text, "≈ 8 s to wait, 3 s to run");
  assert.equal(describeEstimate(data, 2, () => 3).wait, 8);
});
