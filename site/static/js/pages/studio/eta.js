/* Daydream studio — the times a card and the estimate line show. Pure: no DOM,
 * unit-tested with node --test (tests/js/studio-eta.test.js).
 *
 * Both read the same numbers: a running card shows its task's eta_s (the worker's ETA:
 * before the first step is measured, the server's run estimate; then measured time per
 * step × steps left), and the estimate line's wait is the server's sum of those same
 * eta_s of the running tasks plus the run estimates of the queued tasks ahead, dealt over
 * the live workers (services/generation/estimates.py). So with one worker and one running
 * task, "≈ N s to wait" is that card's "about N s left". */
import { formatEta, formatSeconds, isNumber } from "../../lib/format.js";

export const ESTIMATING = "estimating…";

/** The time a card shows: "about N s left", "estimating…" (running, nothing to go by) or "". */
export function cardEta(task) {
  if (!task) return "";
  if (task.state === "running") {
    if (isNumber(task.eta_s)) return formatEta(task.eta_s);
    if (isNumber(task.run_s) && !((task.progress || {}).step > 0)) return formatEta(task.run_s);
    return ESTIMATING;
  }
  if (task.state === "queued") {
    if (isNumber(task.eta_s)) return formatEta(task.eta_s);
    const estimate = task.estimate; // the server's answer at submit
    if (estimate && isNumber(estimate.eta_s)) return formatEta(estimate.eta_s);
    return "";
  }
  return "";
}

/** A wait counted down by the seconds since the server said it (never below 0). */
export function waitLeft(waitS, elapsedS) {
  if (!isNumber(waitS)) return null;
  return Math.max(0, waitS - Math.max(0, isNumber(elapsedS) ? elapsedS : 0));
}

/**
 * The wait of an answer of POST /api/v1/estimate, `elapsedS` seconds after it came.
 * `liveEtas(id)` gives the time left that the card of one of our running tasks shows now
 * (null once it is no longer running). The answer's `running` says what the server
 * counted for each of them; the difference to what their cards show now (counted down
 * for the time since) is added, so the line follows the cards between answers. With one
 * worker that is exact (the wait is their sum); with more it is close enough until the
 * next answer. Other users' tasks are only counted down.
 */
export function lineWait(data, elapsedS, liveEtas) {
  const wait = waitLeft(data.wait_s, elapsedS);
  if (wait === null || !data.running || typeof liveEtas !== "function") return wait;
  let adjusted = wait;
  Object.keys(data.running).forEach((id) => {
    const counted = waitLeft(data.running[id], elapsedS);
    if (counted === null) return;
    const live = liveEtas(id);
    adjusted += (isNumber(live) ? Math.max(0, live) : 0) - counted;
  });
  return Math.max(0, adjusted);
}

/** The estimate line of an answer of POST /api/v1/estimate, `elapsedS` seconds after it
 * came (see lineWait for liveEtas): {text, title, wait}. */
export function describeEstimate(data, elapsedS, liveEtas) {
  const position = isNumber(data.position) ? data.position : null;
  const title = position !== null
    ? (position <= 1 ? "It would be next in line." : "It would be number " + position + " in the queue.")
    : "";
  if (data.eta_s === null || data.eta_s === undefined) {
    return { text: "No estimate yet: nothing like this has run here so far.", title, wait: null };
  }
  const wait = lineWait(data, elapsedS, liveEtas);
  const run = isNumber(data.run_s) ? data.run_s : null;
  let text;
  if (wait !== null && run !== null) text = "≈ " + formatSeconds(wait) + " to wait, " + formatSeconds(run) + " to run";
  else if (isNumber(data.eta_s)) text = "≈ " + formatSeconds(waitLeft(data.eta_s, elapsedS)) + " until it is done";
  else text = "No estimate yet";
  return { text, title, wait };
}
