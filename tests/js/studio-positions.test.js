// Unit tests of how the studio keeps its queued cards' positions (site/static/js/pages/studio/positions.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createCoalescer, positionPatches } from "../../site/static/js/pages/studio/positions.js";

test("only our queued tasks whose position moved are patched", () => {
  const tasks = [
    { id: "a", state: "queued", position: 3 },
    { id: "b", state: "queued", position: 5 },
    { id: "c", state: "running", position: 1 },
    { id: "d", state: "queued" },
  ];
  const patches = positionPatches(tasks, { a: 2, b: 5, c: 1, d: 7, other: 1 });
  assert.deepEqual(patches, [{ id: "a", position: 2 }, { id: "d", position: 7 }]);
  assert.deepEqual(positionPatches(tasks, undefined), []);
  assert.deepEqual(positionPatches(tasks, {}), []); // started or canceled meanwhile: their own events say so
});

function fakeTimers() {
  const pending = [];
  return {
    setTimer: (fn, ms) => { pending.push({ fn, ms }); return pending.length; },
    fire: () => pending.splice(0).forEach(({ fn }) => fn()),
    count: () => pending.length,
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("a burst of queue events costs one refresh, after the delay", async () => {
  const timers = fakeTimers();
  let runs = 0;
  const refresh = createCoalescer(() => { runs += 1; }, { delay: 500, setTimer: timers.setTimer });
  for (let i = 0; i < 50; i++) refresh.schedule();
  assert.equal(timers.count(), 1);
  assert.equal(runs, 0);
  timers.fire();
  await settle();
  assert.equal(runs, 1);
  assert.equal(refresh.busy(), false);
});

test("events during a refresh make exactly one more after it", async () => {
  const timers = fakeTimers();
  let runs = 0;
  let finish;
  const refresh = createCoalescer(() => { runs += 1; return new Promise((resolve) => { finish = resolve; }); },
    { delay: 500, setTimer: timers.setTimer });
  refresh.schedule();
  timers.fire();
  await settle();
  assert.equal(runs, 1);
  refresh.schedule();
  refresh.schedule();
  assert.equal(timers.count(), 0); // nothing more while the first is in flight
  finish();
  await settle();
  assert.equal(timers.count(), 1);
  timers.fire();
  await settle();
  assert.equal(runs, 2);
  finish();
  await settle();
  assert.equal(refresh.busy(), false);
});

test("a refresh that fails does not stop the next ones", async () => {
  const timers = fakeTimers();
  let runs = 0;
  const refresh = createCoalescer(() => { runs += 1; throw new Error("offline"); },
    { delay: 10, setTimer: timers.setTimer });
  refresh.schedule();
  timers.fire();
  await settle();
  refresh.schedule();
  timers.fire();
  await settle();
  assert.equal(runs, 2);
});
