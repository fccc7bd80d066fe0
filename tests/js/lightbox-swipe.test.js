// Unit tests of site/static/js/lib/lightbox.js's swipe rule (node --test tests/js): a
// swipe to the left shows the next picture, to the right the previous one — issue 13.
import { test } from "node:test";
import assert from "node:assert/strict";
import { swipeStep } from "../../site/static/js/lib/lightbox.js";

test("a horizontal swipe steps: left → next, right → previous", () => {
  assert.equal(swipeStep({ x: 300, y: 200 }, { x: 100, y: 210 }), 1);
  assert.equal(swipeStep({ x: 100, y: 200 }, { x: 300, y: 190 }), -1);
});

test("taps, short moves and vertical scrolls do not step", () => {
  assert.equal(swipeStep({ x: 100, y: 100 }, { x: 100, y: 100 }), 0);
  assert.equal(swipeStep({ x: 100, y: 100 }, { x: 75, y: 100 }), 0);
  assert.equal(swipeStep({ x: 100, y: 100 }, { x: 60, y: 300 }), 0);
  assert.equal(swipeStep({ x: 100, y: 100 }, { x: 40, y: 160 }), 0, "too slanted");
  assert.equal(swipeStep(null, { x: 0, y: 0 }), 0);
  assert.equal(swipeStep({ x: NaN, y: 0 }, { x: 0, y: 0 }), 0);
});

test("the distance can be set", () => {
  assert.equal(swipeStep({ x: 100, y: 0 }, { x: 75, y: 0 }, { minDistance: 20 }), 1);
});
