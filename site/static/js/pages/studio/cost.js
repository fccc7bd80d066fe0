/* Daydream studio — what a task costs, from the server's cost constants (studio-config
 * "cost": {steps_unit, pixels_unit}): samples × ceil(steps × width × height /
 * (steps_unit × pixels_unit)), the formula of API.md. Pure: unit-tested (tests/js/studio-cost.test.js). */
import { isNumber, plural } from "../../lib/format.js";

/** The cost of {samples, steps, width, height}; null while one of them is missing or not positive. */
export function computeCost(params, cost) {
  const values = [params.samples, params.steps, params.width, params.height];
  if (values.some((v) => !isNumber(v) || v <= 0)) return null;
  return params.samples * Math.ceil((params.steps * params.width * params.height) / (cost.steps_unit * cost.pixels_unit));
}

/** The cost of one of an edit's references where its pipeline encodes it at another size
 * than the result's: `rule` (the card's edit_reference_pixels, [least, most]) holds the
 * result's pixel count between them (Qwen-Image-Edit: a megapixel whatever the result;
 * FLUX.2: at most a megapixel), samples × ceil(steps × those pixels / (steps_unit ×
 * pixels_unit)) (params.reference_pixels, params.guide_cost). null without a rule (the
 * reference costs what the result does) or while a number is missing. */
export function referenceCost(params, cost, rule) {
  if (!Array.isArray(rule) || computeCost(params, cost) === null) return null;
  const pixels = Math.min(Math.max(params.width * params.height, rule[0]), rule[1]);
  return params.samples * Math.ceil((params.steps * pixels) / (cost.steps_unit * cost.pixels_unit));
}

/** The steps image-to-image runs (and is charged for): int(steps × strength), at least 1
 * and at most steps (models.effective_steps); steps unchanged while the strength is unknown. */
export function runSteps(steps, strength) {
  if (!isNumber(steps) || !isNumber(strength)) return steps;
  return Math.max(1, Math.min(steps, Math.floor(steps * strength)));  // (the same doubles as Python)
}

/** The server charges nothing although the formula says something: staff, free of charge. */
export function isFreeOfCharge(serverCost, formula) {
  return serverCost === 0 && formula !== null && formula > 0;
}

/** The cost to show: the server's answer, else the formula (0 for someone who is not charged). */
export function shownCost(serverCost, freeOfCharge, formula) {
  if (serverCost !== null && serverCost !== undefined) return serverCost;
  return freeOfCharge && formula !== null ? 0 : formula;
}

/** What follows "Cost" on the cost line: the unit, or, while the cost cannot be worked
 * out (a field is empty or not a number), what to do about it. */
export function costWords(cost) {
  if (cost === null || cost === undefined) return "unknown: fix the fields above";
  return cost === 1 ? "token" : "tokens";
}

/** The words after the cost (#cost-balance) and whether the task is more than can pay
 * it (the line turns to a warning). `tokens`: the user's own balance (null: unknown);
 * `funds`: the server's {pool, class} (credits.funds): a class pool that pays for them,
 * as the server pays at submit: the pool when it can, else their own tokens. */
export function balanceLine(cost, tokens, funds) {
  const pool = funds && isNumber(funds.pool) ? funds.pool : null;
  const known = cost !== null && cost !== undefined;
  if (pool === null) {
    if (tokens === null) return { text: "", short: false };
    const short = known && cost > tokens;
    return { text: (short ? "You have only " : "You have ") + plural(tokens, "token", "tokens"), short };
  }
  if (!known || cost <= pool) {
    return { text: "Your class's pool pays: it has " + plural(pool, "token", "tokens"), short: false };
  }
  const own = tokens === null ? "" : plural(tokens, "token", "tokens");
  if (tokens !== null && cost <= tokens) {
    return { text: "Your class's pool has only " + pool + ", so your own tokens pay: you have " + own, short: false };
  }
  return { text: "Your class's pool has only " + pool + (tokens === null ? "" : " and you have only " + own),
    short: true };
}
