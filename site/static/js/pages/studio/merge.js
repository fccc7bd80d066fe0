/* Daydream studio — how what we know of a task and what just arrived combine.
 * Pure: no DOM, unit-tested with node --test (tests/js/studio-merge.test.js). */
import { isNumber } from "../../lib/format.js";

const FINAL = { done: true, failed: true, canceled: true };
const STATE_RANK = { queued: 0, running: 1, done: 2, failed: 2, canceled: 2 };

export const STATE_LABELS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", canceled: "Canceled" };

/** done, failed and canceled: nothing more happens to the task. */
export function isFinal(state) { return !!FINAL[state]; }

/** How far a state is along queued → running → final; -1 for an unknown one. */
export function rank(state) { return STATE_RANK[state] === undefined ? -1 : STATE_RANK[state]; }

/**
 * Merge what we know with what just arrived. States only move forward, so a stale
 * answer (a list fetched before an event) never moves a card backwards.
 */
export function mergeTask(current, incoming) {
  if (!current) return Object.assign({}, incoming);
  let merged;
  if (incoming.state && rank(incoming.state) < rank(current.state)) {
    merged = Object.assign({}, incoming, current); // keep ours, fill in what we lacked
  } else {
    merged = Object.assign({}, current, incoming);
    if (incoming.state === "running" && current.state === "running" &&
        current.progress && incoming.progress &&
        (incoming.progress.step || 0) < (current.progress.step || 0)) {
      merged.progress = current.progress; // an older snapshot of the same run
      merged.eta_s = current.eta_s;
      if ("_sample" in current) merged._sample = current._sample;
      if ("_batch" in current) merged._batch = current._batch;
    }
    // Images only accumulate while a task runs: an older snapshot never takes one away.
    if (Array.isArray(current.images) && Array.isArray(incoming.images) &&
        incoming.images.length < current.images.length && !isFinal(incoming.state)) {
      merged.images = current.images;
    }
  }
  if (isFinal(merged.state)) {
    delete merged._preview;
    delete merged._sample;
    delete merged._batch;
  }
  return merged;
}

/** Turn a Socket.IO `task` payload into a partial task (_preview, _sample and _batch are live only). */
export function eventToPatch(ev) {
  const patch = { id: ev.id };
  if (ev.state) patch.state = ev.state;
  if (typeof ev.step === "number" || typeof ev.total === "number") {
    patch.progress = { step: ev.step || 0, total: ev.total || 0 };
  }
  if ("eta_s" in ev) patch.eta_s = ev.eta_s;
  if (isNumber(ev.run_s)) patch.run_s = ev.run_s;
  if ("position" in ev) patch.position = ev.position;
  if (typeof ev.preview === "string" && ev.preview.indexOf("data:image/") === 0) patch._preview = ev.preview;
  if (isNumber(ev.sample)) patch._sample = ev.sample;
  if (isNumber(ev.batch) && ev.batch > 0) patch._batch = ev.batch;
  if (isNumber(ev.samples) && ev.samples > 0) patch.samples = ev.samples;
  if (isNumber(ev.seed)) patch.seed = ev.seed;
  if (Array.isArray(ev.images)) patch.images = ev.images;
  if (ev.error) patch.error = ev.error;
  if (typeof ev.refunded === "boolean") patch.refunded = ev.refunded;
  return patch;
}

/** The 0-based index of the sample being rendered, from the event or from the step; null when unknown. */
export function currentSample(task) {
  const samples = Math.max(1, task.samples || 1);
  if (isNumber(task._sample)) return Math.min(samples - 1, Math.max(0, task._sample));
  const progress = task.progress || {};
  if (task.steps && progress.total === task.steps * samples) {
    return Math.min(samples - 1, Math.floor((progress.step || 0) / task.steps));
  }
  return null;
}

/**
 * What the card says of the images being rendered: "Image 2 of 4", or, when several of
 * them render together in one call (`_batch`), "Images 1–4 of 4"; "" when unknown or
 * when the task makes one image.
 */
export function sampleLabel(task) {
  const samples = Math.max(1, task.samples || 1);
  const sample = samples > 1 ? currentSample(task) : null;
  if (sample === null) return "";
  const together = isNumber(task._batch) ? Math.min(task._batch, samples - sample) : 1;
  if (together > 1) return "Images " + (sample + 1) + "\u2013" + (sample + together) + " of " + samples;
  return "Image " + (sample + 1) + " of " + samples;
}
