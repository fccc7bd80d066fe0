/* Daydream studio — the task parameter rules ({field: {min, max, step, default}}, from the
 * server's studio-config) narrowed by the user's limits. Pure: no DOM. */
import { isNumber } from "../../lib/format.js";

/** Which limit caps which field's maximum (limits of a tier or of staff; missing ones cap nothing). */
export const CAPS = { width: "max_side", height: "max_side", steps: "max_steps", samples: "max_samples" };

/** A copy of `rules` with each maximum lowered to the user's limit where that is lower. */
export function narrowRules(rules, limits) {
  const narrowed = {};
  Object.keys(rules || {}).forEach((field) => {
    const rule = Object.assign({}, rules[field]);
    const cap = limits ? limits[CAPS[field]] : undefined;
    if (isNumber(cap) && (!isNumber(rule.max) || cap < rule.max)) rule.max = cap;
    narrowed[field] = rule;
  });
  return narrowed;
}
