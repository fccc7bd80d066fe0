// Unit tests of site/static/js/lib/archive.js's archiveText: a count is said once, even
// when the page names the ZIP by its count ("3 images") — issue 13.
import { test } from "node:test";
import assert from "node:assert/strict";
import { archiveText } from "../../site/static/js/lib/archive.js";

const of3 = (state, done) => ({ id: "z", state, image_count: 3, progress: { done, total: 3 }, size_bytes: 2048 });

test("a ZIP named by its count says the count once in every state", () => {
  for (const [state, done] of [["queued", 0], ["building", 1], ["ready", 3]]) {
    const text = archiveText(of3(state, done), "3 images");
    assert.equal(text.split("3 images").length - 1, 1, text);
  }
  assert.equal(archiveText(of3("queued", 0), "3 images"), "Waiting to start the ZIP of 3 images…");
  assert.equal(archiveText(of3("building", 1), "3 images"), "Packing the ZIP of 3 images: 1 done…");
  assert.equal(archiveText(of3("ready", 3), "3 images"), "The ZIP of 3 images is ready: 2 KB.");
});

test("a ZIP named otherwise still gets its count", () => {
  assert.equal(archiveText(of3("queued", 0), "“Lanterns”"), "Waiting to start the ZIP of “Lanterns” (3 images)…");
  assert.equal(archiveText(of3("ready", 3), "all your images"), "The ZIP of all your images is ready: 3 images, 2 KB.");
  // "13 images" is not "3 images".
  assert.equal(archiveText({ state: "queued", image_count: 3 }, "13 images"), "Waiting to start the ZIP of 13 images (3 images)…");
});
