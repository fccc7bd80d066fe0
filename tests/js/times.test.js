// Unit tests of site/static/js/lib/times.js and the pure part of lib/fragment.js (node --test tests/js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { localTime } from "../../site/static/js/lib/times.js";
import { formatDate } from "../../site/static/js/lib/format.js";
import { withQuery } from "../../site/static/js/lib/fragment.js";

const ISO = "2026-03-01T12:30:00Z";

test("localTime: the day and time by default, as formatDate", () => {
  assert.equal(localTime(ISO), formatDate(ISO));
  assert.equal(localTime(ISO, "datetime"), formatDate(ISO));
});

test("localTime: the date alone, without the time", () => {
  const text = localTime(ISO, "date");
  assert.ok(text.includes("2026"), text);
  assert.ok(!text.includes(":"), text);
});

test("localTime: how long ago", () => {
  const now = Date.parse(ISO);
  assert.equal(localTime(ISO, "ago", now + 30 * 1000), "just now");
  assert.equal(localTime(ISO, "ago", now + 5 * 60 * 1000), "5 min ago");
  assert.equal(localTime(ISO, "ago", now + 5 * 86400 * 1000), "5 days ago");
});

test("localTime: null for a time it cannot read (the server's text stays)", () => {
  assert.equal(localTime("", "date"), null);
  assert.equal(localTime(null), null);
  assert.equal(localTime("yesterday-ish", "ago"), null);
});

test("withQuery adds the parameters that have a value", () => {
  assert.equal(withQuery("/admin/users/rows", { q: "ann", offset: 0 }), "/admin/users/rows?q=ann&offset=0");
  assert.equal(withQuery("/admin/users/rows", { q: "", offset: 25 }), "/admin/users/rows?offset=25");
  assert.equal(withQuery("/account/ledger", { offset: null }), "/account/ledger");
  assert.equal(withQuery("/x", { q: "a b&c" }), "/x?q=a+b%26c");
  assert.equal(withQuery("/x"), "/x");
});
