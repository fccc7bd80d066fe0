/* Daydream studio — sentences the panel composes from the server's. Pure: unit-tested
 * (tests/js/studio-panel.test.js). */

/** A 429 image_cap: the server's message says when the cap resets ("…; more from
 * 00:00"), so no countdown of seconds follows it (hours of them, for a daily cap). */
export function capText(message) {
  let base = String(message || "You have made as many images as you may for now").trim();
  if (!/[.!?]$/.test(base)) base += ".";
  return base + " Nothing was charged.";
}

/** A 429 (the queue is full, or too many of yours wait) with `left` seconds to wait: the
 * server's message without what this line says itself (that nothing was charged, when to
 * try again), then "Nothing was charged; try again in N s." once. */
export function retryText(message, left) {
  let base = String(message || "The queue is full right now.").trim();
  base = base.replace(/\s*Nothing was charged[.;!]?/gi, "").trim();
  base = base.replace(/[;,]?\s*try again (shortly|later|soon|in a moment)\s*([.;!])?/gi, ".").trim();
  base = base.replace(/\.{2,}$/, ".");
  if (!base) base = "The queue is full right now.";
  if (!/[.!?]$/.test(base)) base += ".";
  return base + " Nothing was charged; " + (left > 0 ? "try again in " + left + " s." : "you can try again now.");
}
