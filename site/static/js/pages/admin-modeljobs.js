/* Daydream — Admin → Models: the Install form and the list of model jobs (installs, and the
 * other kinds of model job: convert, merge), live over Socket.IO with polling while any job
 * is unfinished (the fallback when no WebSocket gets through).
 *
 * POST /api/v1/admin/models/install {source, token?, revision?, variant?, files?, sha256?} -> 202 job
 * GET  /api/v1/admin/model-jobs                 -> {items: [job], total, offset, limit}
 * GET  /api/v1/admin/model-jobs/{id}            -> job
 * POST /api/v1/admin/model-jobs/{id}/cancel     -> job
 * POST /api/v1/admin/model-jobs/{id}/retry      -> 202 a new job (a failed or cancelled install's Retry)
 * job: {id, kind, state: queued|running|done|failed|cancelled, source, destination, options,
 *       done_bytes, total_bytes, rate, eta_s, error, model_id, created_at, finished_at}
 * options.stage: an install's "retrying in 2 s after 503" while it waits to try again; a
 * convert's or merge's stage (loading, merging tensor i/N, saving).
 * Socket.IO `model_job`: a job (an install's has done_bytes; another kind's event may carry
 * its own fields, so the row is read again from the API).
 * The list is generic by kind: bytes for an install, steps (and the stage) for the others.
 * A finished job that made a model tells the models table to load again
 * (document event "daydream:models-changed").
 */
import { api, errorText } from "../lib/api.js";
import { formatBytes } from "../lib/bytes.js";
import { byId, el } from "../lib/dom.js";
import { formatEta } from "../lib/format.js";
import { getSocket } from "../lib/socket.js";

const KIND_LABELS = { install: "Install", convert: "Convert", merge: "Merge" };
const STATE_LABELS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", cancelled: "Cancelled" };
const UNFINISHED = ["queued", "running"];
const POLL_MS = 2000;
const SHOWN = 50; // the latest jobs listed (finished ones are deleted after DAYDREAM_MODEL_JOBS_KEEP_DAYS)

const form = byId("install-form");
const startButton = byId("install-start");
const statusLine = byId("install-status");
const list = byId("model-jobs");
const emptyNote = byId("model-jobs-empty");
const moreNote = byId("model-jobs-more");
let jobs = new Map(); // id -> job, in the order the server lists them
let total = 0; // every job the server keeps
let pollTimer = null;

function fieldErrors(field, message) {
  form.querySelectorAll(".field-error").forEach((p) => {
    const mine = p.dataset.field === field;
    p.hidden = !mine;
    p.textContent = mine ? message : "";
  });
}

/** "12.3 MB of 40.0 MB · 2.1 MB/s · about 12 s left" (an install), "step 3 of 10" (others). */
export function progressText(job) {
  if (job.kind !== "install") {
    const stage = (job.options && job.options.stage) || "";
    const steps = job.total_bytes ? "step " + (job.done_bytes || 0) + " of " + job.total_bytes : "";
    return [stage, steps].filter(Boolean).join(" · ");
  }
  const parts = [];
  const stage = job.options && job.options.stage; // "retrying in 2 s after 503"
  const done = formatBytes(job.done_bytes || 0);
  parts.push(job.total_bytes ? done + " of " + formatBytes(job.total_bytes) : done);
  if (job.state === "running" && job.rate) parts.push(formatBytes(job.rate) + "/s");
  if (job.state === "running" && typeof job.eta_s === "number" && !stage) parts.push(formatEta(job.eta_s));
  if (job.state === "running" && stage) parts.push(stage);
  return parts.filter(Boolean).join(" · ");
}

function progressBar(job) {
  const bar = el("progress", { class: "model-job__bar", max: job.total_bytes || 1,
    "aria-label": (KIND_LABELS[job.kind] || job.kind) + " progress" });
  if (job.total_bytes) bar.value = Math.min(job.done_bytes || 0, job.total_bytes);
  else bar.removeAttribute("value"); // size not known yet: indeterminate
  return bar;
}

function cancelButton(job) {
  const button = el("button", { type: "button", class: "btn btn--small", text: "Cancel",
    "aria-label": "Cancel " + (job.destination || job.source) });
  button.addEventListener("click", () => {
    button.disabled = true;
    api("POST", "/api/v1/admin/model-jobs/" + encodeURIComponent(job.id) + "/cancel", {}).then((res) => {
      if (res.ok && res.data) upsert(res.data);
      else { button.disabled = false; statusLine.textContent = errorText(res, "Could not cancel the job."); }
    });
  });
  return button;
}

/** Start a failed or cancelled install again: a new job with the same source and settings. */
function retryButton(job) {
  const button = el("button", { type: "button", class: "btn btn--small model-job__retry", text: "Retry",
    "aria-label": "Retry " + (job.destination || job.source) });
  button.addEventListener("click", () => {
    button.disabled = true;
    statusLine.classList.remove("is-ok");
    api("POST", "/api/v1/admin/model-jobs/" + encodeURIComponent(job.id) + "/retry", {}).then((res) => {
      if (res.ok && res.data) {
        statusLine.textContent = "Installing " + (res.data.destination || res.data.source) + " again: follow it below.";
        statusLine.classList.add("is-ok");
        total += 1;
        upsert(res.data);
        return;
      }
      button.disabled = false;
      statusLine.textContent = errorText(res, "The install could not be started again.");
    });
  });
  return button;
}

function jobItem(job) {
  const unfinished = UNFINISHED.includes(job.state);
  const head = el("div", { class: "model-job__head" }, [
    el("span", { class: "chip model-job__kind", text: KIND_LABELS[job.kind] || job.kind }),
    el("span", { class: "model-job__source", text: job.source, title: job.source }),
    el("span", { class: "model-job__state is-" + job.state, text: STATE_LABELS[job.state] || job.state }),
  ]);
  const children = [head];
  if (unfinished) {
    children.push(progressBar(job));
    children.push(el("p", { class: "model-job__progress", text: progressText(job) }));
    children.push(el("div", { class: "model-job__actions" }, [cancelButton(job)]));
  } else if (job.state === "done") {
    const into = job.destination ? "into " + job.destination + ". " : "";
    const made = job.model_id
      ? el("a", { href: "#models-list-title", class: "model-job__model", text: "Enable " + job.model_id + " in the table below" })
      : null;
    children.push(el("p", { class: "model-job__done" }, ["Finished " + into, made]));
    if (job.error) children.push(el("p", { class: "model-job__error", text: job.error }));
  } else if (job.error) {
    children.push(el("p", { class: "model-job__error", text: job.error }));
  }
  if (job.kind === "install" && (job.state === "failed" || job.state === "cancelled")) {
    children.push(el("div", { class: "model-job__actions" }, [retryButton(job)]));
  }
  return el("li", { class: "model-job is-" + job.state, id: "model-job-" + job.id,
    dataset: { jobId: job.id, state: job.state, modelId: job.model_id || "" } }, children);
}

function render() {
  list.replaceChildren(...Array.from(jobs.values()).map(jobItem));
  emptyNote.hidden = jobs.size > 0;
  moreNote.hidden = total <= jobs.size;
  moreNote.textContent = "The latest " + jobs.size + " of " + total + " jobs are listed.";
  schedulePoll();
}

function upsert(job) {
  const before = jobs.get(job.id);
  if (!before) jobs = new Map([[job.id, job], ...Array.from(jobs).slice(0, SHOWN - 1)]);
  else jobs.set(job.id, job);
  const ended = before && UNFINISHED.includes(before.state) && !UNFINISHED.includes(job.state);
  if (ended && job.model_id) document.dispatchEvent(new CustomEvent("daydream:models-changed"));
  render();
}

function load() {
  return api("GET", "/api/v1/admin/model-jobs?limit=" + SHOWN).then((res) => {
    if (!res.ok || !res.data) return;
    const previous = jobs;
    jobs = new Map(res.data.items.map((job) => [job.id, job]));
    total = res.data.total;
    const madeOne = res.data.items.some((job) => {
      const before = previous.get(job.id);
      return before && UNFINISHED.includes(before.state) && job.state === "done" && job.model_id;
    });
    if (madeOne) document.dispatchEvent(new CustomEvent("daydream:models-changed"));
    render();
  });
}

function schedulePoll() {
  window.clearTimeout(pollTimer);
  const busy = Array.from(jobs.values()).some((job) => UNFINISHED.includes(job.state));
  if (busy) pollTimer = window.setTimeout(load, POLL_MS);
}

function readForm() {
  const value = (name) => form.elements[name].value.trim();
  const body = { source: value("source") };
  ["token", "revision", "variant", "sha256"].forEach((name) => { if (value(name)) body[name] = value(name); });
  const files = value("files").split(",").map((f) => f.trim()).filter(Boolean);
  if (files.length) body.files = files;
  return body;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  fieldErrors("", "");
  const body = readForm();
  if (!body.source) { fieldErrors("source", "Give a repo id (owner/name) or an https:// URL."); return; }
  startButton.disabled = true;
  statusLine.classList.remove("is-ok");
  statusLine.textContent = "Starting…";
  api("POST", "/api/v1/admin/models/install", body).then((res) => {
    startButton.disabled = false;
    if (res.ok && res.data) {
      statusLine.textContent = "Installing " + (res.data.destination || res.data.source) + ": follow it below.";
      statusLine.classList.add("is-ok");
      form.elements.token.value = ""; // the token goes with the job only
      form.elements.source.value = "";
      total += 1;
      upsert(res.data);
      return;
    }
    statusLine.textContent = "";
    const field = res.error && res.error.field;
    if (field && form.querySelector('.field-error[data-field="' + field + '"]')) {
      if (field !== "source") byId("install-more").open = true;
      fieldErrors(field, errorText(res, "Not accepted."));
    } else {
      fieldErrors("source", errorText(res, "The install could not be started."));
    }
  });
});

const socket = getSocket();
if (socket) {
  socket.on("model_job", (job) => {
    if (!job || !job.id) return;
    if (job.kind === "install" && typeof job.done_bytes === "number") { upsert(job); return; }
    api("GET", "/api/v1/admin/model-jobs/" + encodeURIComponent(job.id), undefined, { reauth: false })
      .then((res) => { if (res.ok && res.data) upsert(res.data); });
  });
  socket.on("connect", load); // a reconnect may have missed events
}
load();
