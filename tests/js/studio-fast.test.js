// Unit tests of fast mode in the studio panel (issue 28): the card's fast and staff's
// fast_mode decide whether the Fast mode box shows, whether it is locked on, and whether
// the task's `fast` is sent (site/static/js/pages/studio/cards.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { cardOf, fastChoice, paramsForCard } from "../../site/static/js/pages/studio/cards.js";

const FAST = { available: true, method: "first-block cache", text: "skips most of the denoiser" };
const flux = (fastMode) => cardOf({ id: "demo-flux", family: "flux", fast: FAST, fast_mode: fastMode });

test("a model whose staff left fast mode off, or whose family has none, shows no box and sends no fast", () => {
  assert.equal(fastChoice(flux("off"), true), null);
  const sdxl = cardOf({ id: "demo-sdxl", family: "sdxl", fast: { available: false, method: null, text: "" }, fast_mode: "on" });
  assert.equal(sdxl.fastMode, "off");
  assert.equal(fastChoice(sdxl, true), null);
  assert.equal("fast" in paramsForCard({ prompt: "a", fast: true }, flux("off")), false);
});

test("on: the box is ticked and locked, and the server decides (no fast sent)", () => {
  const choice = fastChoice(flux("on"), false);
  assert.deepEqual([choice.checked, choice.locked], [true, true]);
  assert.match(choice.help, /first-block cache: skips most of the denoiser \(always on/);
  assert.equal("fast" in paramsForCard({ prompt: "a", fast: true }, flux("on")), false);
});

test("optional: the user's tick is kept and sent (a reused fast task ticks it)", () => {
  assert.deepEqual([fastChoice(flux("optional"), false).checked, fastChoice(flux("optional"), false).locked], [false, false]);
  assert.equal(fastChoice(flux("optional"), true).checked, true);
  assert.equal(paramsForCard({ prompt: "a", fast: true }, flux("optional")).fast, true);
  assert.equal(paramsForCard({ prompt: "a", fast: false }, flux("optional")).fast, false);
});
