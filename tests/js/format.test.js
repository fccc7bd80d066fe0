// Unit tests of site/static/js/lib/format.js (node --test tests/js).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  plural, shorten, formatNumber, formatEta, formatSeconds, formatDuration, parseTime,
  formatCreated, formatDate, ago,
} from "../../site/static/js/lib/format.js";

test("plural picks the word by count", () => {
  assert.equal(plural(1, "image", "images"), "1 image");
  assert.equal(plural(0, "image", "images"), "0 images");
  assert.equal(plural(3, "image", "images"), "3 images");
});

test("shorten cuts with an ellipsis and keeps short text", () => {
  assert.equal(shorten("hello", 10), "hello");
  assert.equal(shorten("hello world", 6), "hello…");
  assert.equal(shorten(null, 4), "");
});

test("formatNumber groups thousands", () => {
  assert.equal(formatNumber(12345), "12,345");
});

test("formatEta: seconds, minutes, unknown", () => {
  assert.equal(formatEta(0.2), "about 1 s left");
  assert.equal(formatEta(42.4), "about 42 s left");
  assert.equal(formatEta(600), "about 10 min left");
  assert.equal(formatEta(-1), "");
  assert.equal(formatEta(NaN), "");
  assert.equal(formatEta(undefined), "");
});

test("formatSeconds and formatDuration", () => {
  assert.equal(formatSeconds(0), "0 s");
  assert.equal(formatSeconds(0.3), "1 s");
  assert.equal(formatSeconds(150), "3 min");
  assert.equal(formatDuration(4.21), "4.2 s");
  assert.equal(formatDuration(37.4), "37 s");
  assert.equal(formatDuration(125), "2 min 5 s");
  assert.equal(formatDuration("x"), "");
});

test("parseTime, formatDate and formatCreated handle bad input", () => {
  assert.equal(parseTime("not a date"), null);
  assert.equal(parseTime("2026-12-01T10:00:00Z"), Date.UTC(2026, 11, 1, 10));
  assert.equal(formatDate("", "—"), "—");
  assert.notEqual(formatDate("2026-12-01T10:00:00Z"), "");
  assert.deepEqual(formatCreated("nope"), { short: "", full: "" });
  const now = Date.UTC(2026, 11, 1, 12);
  const today = formatCreated("2026-12-01T11:00:00Z", now);
  const earlier = formatCreated("2026-11-20T11:00:00Z", now);
  assert.ok(earlier.short.length > today.short.length, "another day shows the date too");
});

test("ago counts back from now", () => {
  const now = Date.UTC(2026, 11, 1, 12);
  assert.equal(ago(null, now), "never");
  assert.equal(ago("2026-12-01T11:59:30Z", now), "just now");
  assert.equal(ago("2026-12-01T11:30:00Z", now), "30 min ago");
  assert.equal(ago("2026-12-01T07:00:00Z", now), "5 h ago");
  assert.equal(ago("2026-11-25T12:00:00Z", now), "6 days ago");
});
