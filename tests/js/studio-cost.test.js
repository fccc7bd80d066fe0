// Unit tests of the studio's cost (site/static/js/pages/studio/cost.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { balanceLine, computeCost, isFreeOfCharge, referenceCost, shownCost } from "../../site/static/js/pages/studio/cost.js";

const COST = { steps_unit: 50, pixels_unit: 512 * 512 };

test("one token buys up to steps_unit steps of a pixels_unit image, per sample", () => {
  assert.equal(computeCost({ samples: 1, steps: 50, width: 512, height: 512 }, COST), 1);
  assert.equal(computeCost({ samples: 1, steps: 51, width: 512, height: 512 }, COST), 2);
  assert.equal(computeCost({ samples: 1, steps: 150, width: 512, height: 512 }, COST), 3);
  assert.equal(computeCost({ samples: 2, steps: 40, width: 256, height: 256 }, COST), 2);
  assert.equal(computeCost({ samples: 2, steps: 60, width: 64, height: 64 }, COST), 2);
  assert.equal(computeCost({ samples: 4, steps: 30, width: 768, height: 768 }, COST), 8);
});

test("an edit's reference costs the pixels its pipeline encodes it at (params.reference_pixels)", () => {
  const MP = 1024 * 1024;
  const small = { samples: 1, steps: 50, width: 512, height: 512 };
  // Qwen-Image-Edit: a megapixel whatever the result (the server's guide_cost: 4, not 1).
  assert.equal(referenceCost(small, COST, [MP, MP]), 4);
  assert.equal(referenceCost({ ...small, width: 1328, height: 1328 }, COST, [MP, MP]), 4);
  assert.equal(referenceCost({ ...small, samples: 2 }, COST, [MP, MP]), 8);
  // FLUX.2: the result's pixels, at most a megapixel.
  assert.equal(referenceCost(small, COST, [0, MP]), 1);
  assert.equal(referenceCost({ ...small, width: 1536, height: 1536 }, COST, [0, MP]), 4);
  // No rule (Kontext): the base again, as guidedCost counts it; nothing while a number is missing.
  assert.equal(referenceCost(small, COST, null), null);
  assert.equal(referenceCost({ ...small, steps: null }, COST, [MP, MP]), null);
});

test("the constants come from the config", () => {
  const dear = { steps_unit: 10, pixels_unit: 64 * 64 };
  assert.equal(computeCost({ samples: 1, steps: 20, width: 128, height: 64 }, dear), 4);
});

test("no cost while a number is missing or not positive", () => {
  assert.equal(computeCost({ samples: null, steps: 30, width: 512, height: 512 }, COST), null);
  assert.equal(computeCost({ samples: 1, steps: 0, width: 512, height: 512 }, COST), null);
  assert.equal(computeCost({ samples: 1, steps: 30, width: -8, height: 512 }, COST), null);
  assert.equal(computeCost({ samples: 1, steps: 30, width: 512 }, COST), null);
});

test("the server's answer wins; free of charge shows 0", () => {
  assert.equal(shownCost(null, false, 3), 3);
  assert.equal(shownCost(5, false, 3), 5);
  assert.equal(shownCost(0, true, 3), 0);
  assert.equal(shownCost(null, true, 3), 0); // stale answer, still not charged
  assert.equal(shownCost(null, true, null), null);
  assert.equal(isFreeOfCharge(0, 3), true);
  assert.equal(isFreeOfCharge(0, 0), false);
  assert.equal(isFreeOfCharge(2, 2), false);
  assert.equal(isFreeOfCharge(0, null), false);
});

test("image to image is charged for the steps it runs, as the server counts them", async () => {
  const { runSteps, computeCost } = await import("../../site/static/js/pages/studio/cost.js");
  assert.equal(runSteps(30, 0.75), 22);
  assert.equal(runSteps(100, 0.29), 28); // int(100 × 0.29) in Python: 28 (28.999…)
  assert.equal(runSteps(4, 0.1), 1); // at least one
  assert.equal(runSteps(30, null), 30); // strength unknown: all of them
  const unit = { steps_unit: 50, pixels_unit: 512 * 512 };
  assert.equal(computeCost({ samples: 1, steps: runSteps(50, 0.5), width: 1024, height: 1024 }, unit), 2);
});

test("without a class pool, the user's own tokens are what pays", () => {
  assert.deepEqual(balanceLine(3, 10, null), { text: "You have 10 tokens", short: false });
  assert.deepEqual(balanceLine(3, 1, { tokens: 1, pool: null, class: null }), { text: "You have only 1 token", short: true });
  assert.deepEqual(balanceLine(null, 1, null), { text: "You have 1 token", short: false });
  assert.deepEqual(balanceLine(3, null, null), { text: "", short: false });
});

test("a class pool that can pay is not short, whatever the pupil's own tokens", () => {
  const funds = { tokens: 0, pool: 100, class: "7B" };
  assert.deepEqual(balanceLine(5, 0, funds), { text: "Your class's pool pays: it has 100 tokens", short: false });
  assert.deepEqual(balanceLine(100, 0, funds), { text: "Your class's pool pays: it has 100 tokens", short: false });
  assert.deepEqual(balanceLine(null, 0, funds).short, false);
});

test("a pool too short leaves the task to the pupil's own tokens, short only when they cannot pay either", () => {
  const funds = { tokens: 8, pool: 2, class: "7B" };
  assert.deepEqual(balanceLine(5, 8, funds),
    { text: "Your class's pool has only 2, so your own tokens pay: you have 8 tokens", short: false });
  assert.deepEqual(balanceLine(5, 4, funds),
    { text: "Your class's pool has only 2 and you have only 4 tokens", short: true });
  assert.deepEqual(balanceLine(5, null, funds), { text: "Your class's pool has only 2", short: true });
});
