// Unit tests of site/static/js/lib/lightbox.js's stepping rule (node --test tests/js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { stepTarget } from "../../site/static/js/lib/lightbox.js";

test("without wrapping it stops at the ends, or asks for more past the last", () => {
  assert.equal(stepTarget(0, 1, 3), 1);
  assert.equal(stepTarget(2, -1, 3), 1);
  assert.equal(stepTarget(0, -1, 3), null);
  assert.equal(stepTarget(2, 1, 3), null);
  assert.equal(stepTarget(2, 1, 3, { hasMore: true }), "more");
  assert.equal(stepTarget(0, -1, 3, { hasMore: true }), null);
});

test("wrapping goes round, and a single picture has nowhere to go", () => {
  assert.equal(stepTarget(2, 1, 3, { wrap: true }), 0);
  assert.equal(stepTarget(0, -1, 3, { wrap: true }), 2);
  assert.equal(stepTarget(0, 1, 1, { wrap: true }), null);
});

test("nothing to step in an empty or closed lightbox", () => {
  assert.equal(stepTarget(0, 1, 0), null);
  assert.equal(stepTarget(-1, 1, 3), null);
});
