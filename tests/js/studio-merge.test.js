// Unit tests of the studio's task merging and store (site/static/js/pages/studio/merge.js, store.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { currentSample, sampleLabel, eventToPatch, isFinal, mergeTask, rank } from "../../site/static/js/pages/studio/merge.js";
import { createStore } from "../../site/static/js/pages/studio/store.js";

test("states rank queued < running < the final ones", () => {
  assert.ok(rank("queued") < rank("running"));
  for (const s of ["done", "failed", "canceled"]) {
    assert.ok(rank("running") < rank(s));
    assert.equal(isFinal(s), true);
  }
  assert.equal(isFinal("running"), false);
  assert.equal(rank("weird"), -1);
});

test("a new task is copied, not shared", () => {
  const incoming = { id: "a", state: "queued" };
  const merged = mergeTask(undefined, incoming);
  assert.deepEqual(merged, incoming);
  assert.notEqual(merged, incoming);
});

test("states only move forward: a stale answer fills in but never moves back", () => {
  const running = { id: "a", state: "running", progress: { step: 5, total: 10 } };
  const merged = mergeTask(running, { id: "a", state: "queued", prompt: "a fox", position: 2 });
  assert.equal(merged.state, "running");
  assert.deepEqual(merged.progress, { step: 5, total: 10 });
  assert.equal(merged.prompt, "a fox"); // what we lacked
});

test("final states are sticky against late progress", () => {
  const canceled = { id: "a", state: "canceled", refunded: true };
  for (const late of [{ id: "a", state: "running", progress: { step: 9, total: 10 } }, { id: "a", state: "queued" }]) {
    const merged = mergeTask(canceled, late);
    assert.equal(merged.state, "canceled");
    assert.equal(merged.refunded, true);
  }
  // A patch without a state changes details, not the state.
  assert.equal(mergeTask(canceled, { id: "a", eta_s: 3 }).state, "canceled");
});

test("an older progress snapshot of the same run is ignored", () => {
  const current = { id: "a", state: "running", progress: { step: 7, total: 10 }, eta_s: 1, _sample: 1 };
  const merged = mergeTask(current, { id: "a", state: "running", progress: { step: 3, total: 10 }, eta_s: 9, _sample: 0 });
  assert.deepEqual(merged.progress, { step: 7, total: 10 });
  assert.equal(merged.eta_s, 1);
  assert.equal(merged._sample, 1);
  assert.equal(mergeTask(current, { id: "a", state: "running", progress: { step: 8, total: 10 } }).progress.step, 8);
});

test("images only accumulate while running; the final answer is the truth", () => {
  const current = { id: "a", state: "running", images: [{ id: "i1" }, { id: "i2" }] };
  assert.equal(mergeTask(current, { id: "a", state: "running", images: [{ id: "i1" }] }).images.length, 2);
  assert.equal(mergeTask(current, { id: "a", state: "failed", images: [] }).images.length, 0);
});

test("a final task drops its live preview", () => {
  const current = { id: "a", state: "running", _preview: "data:image/jpeg;base64,x", _sample: 0 };
  const done = mergeTask(current, { id: "a", state: "done" });
  assert.equal("_preview" in done, false);
  assert.equal("_sample" in done, false);
});

test("eventToPatch keeps what a task event says, previews only as data: images", () => {
  assert.deepEqual(eventToPatch({ id: "a", state: "running", step: 3, total: 8, eta_s: 2, sample: 1, samples: 2, seed: 7 }),
    { id: "a", state: "running", progress: { step: 3, total: 8 }, eta_s: 2, _sample: 1, samples: 2, seed: 7 });
  assert.equal("_preview" in eventToPatch({ id: "a", preview: "http://elsewhere/x.png" }), false);
  assert.equal(eventToPatch({ id: "a", preview: "data:image/jpeg;base64,x" })._preview, "data:image/jpeg;base64,x");
  assert.deepEqual(eventToPatch({ id: "a", state: "canceled", refunded: true, error: "stopped" }),
    { id: "a", state: "canceled", refunded: true, error: "stopped" });
});

test("currentSample: from the event, else from the step over all samples", () => {
  assert.equal(currentSample({ samples: 2, _sample: 1 }), 1);
  assert.equal(currentSample({ samples: 2, _sample: 5 }), 1);
  assert.equal(currentSample({ samples: 2, steps: 40, progress: { step: 45, total: 80 } }), 1);
  assert.equal(currentSample({ samples: 2, steps: 40, progress: { step: 10, total: 80 } }), 0);
  assert.equal(currentSample({ samples: 2, steps: 40, progress: { step: 10, total: 40 } }), null);
});

test("store: events of an unknown task wait for it, then apply on top, in any order", () => {
  const store = createStore();
  const seen = [];
  store.subscribe((task, before) => seen.push([task.state, before ? before.state : null]));
  assert.equal(store.applyEvent({ id: "t", state: "running", step: 2, total: 4 }), "fetch");
  assert.equal(store.applyEvent({ id: "t", state: "running", step: 1, total: 4 }), "fetch"); // out of order
  assert.equal(store.has("t"), false);
  assert.equal(store.hasEarly("t"), true);
  // The GET answer is older than the events: the events win, the answer fills in.
  const task = store.settle({ id: "t", state: "queued", prompt: "a fox", samples: 1 });
  assert.equal(task.state, "running");
  assert.deepEqual(task.progress, { step: 2, total: 4 });
  assert.equal(task.prompt, "a fox");
  assert.equal(store.hasEarly("t"), false);
  assert.deepEqual(seen, [["queued", null], ["running", "queued"]]);
});

test("store: an earlier session ignores tasks it does not show", () => {
  const store = createStore();
  assert.equal(store.applyEvent({ id: "t", state: "queued" }, false), "ignore");
  assert.equal(store.hasEarly("t"), false);
  assert.equal(store.applyEvent(null), "ignore");
});

test("store: the first final event says so once; later ones are updates", () => {
  const store = createStore();
  store.upsert({ id: "t", state: "running" });
  assert.equal(store.hasUnfinished(), true);
  assert.equal(store.applyEvent({ id: "t", state: "running", step: 3, total: 4 }), "update");
  assert.equal(store.applyEvent({ id: "t", state: "canceled", refunded: true }), "final");
  assert.equal(store.applyEvent({ id: "t", state: "canceled" }), "update");
  assert.equal(store.applyEvent({ id: "t", state: "running", step: 4, total: 4 }), "update");
  assert.equal(store.get("t").state, "canceled");
  assert.equal(store.hasUnfinished(), false);
});

test("store: upsert passes options to the listeners; dropEarly forgets", () => {
  const store = createStore();
  let options = null;
  const stop = store.subscribe((task, before, opts) => { options = opts; });
  store.upsert({ id: "a", state: "queued" }, { top: true });
  assert.deepEqual(options, { top: true });
  stop();
  store.upsert({ id: "a", state: "running" });
  assert.deepEqual(options, { top: true });
  assert.equal(store.upsert({}), null);
  store.applyEvent({ id: "b", state: "queued" });
  store.dropEarly("b");
  assert.equal(store.hasEarly("b"), false);
});

test("images rendered together in one call are named as a range", () => {
  const patch = eventToPatch({ id: "a", state: "running", step: 8, total: 40, sample: 0, batch: 4, samples: 4 });
  assert.equal(patch._batch, 4);
  assert.equal(sampleLabel({ samples: 4, ...patch }), "Images 1\u20134 of 4");
  assert.equal(sampleLabel({ samples: 4, _sample: 2, _batch: 2 }), "Images 3\u20134 of 4");
  assert.equal(sampleLabel({ samples: 4, _sample: 1 }), "Image 2 of 4"); // one image a call
  assert.equal(sampleLabel({ samples: 1, _sample: 0, _batch: 1 }), "");
  const done = mergeTask({ id: "a", state: "running", _sample: 0, _batch: 4 }, { id: "a", state: "done" });
  assert.equal("_batch" in done, false);
});
