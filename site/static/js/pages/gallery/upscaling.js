/* Daydream gallery — "Upscale" in the lightbox's details panel (lib/upscale.js's form):
 * ×2 or ×4, an upscaler and an optional refining pass, the cost shown before submitting.
 * The task is followed by polling GET /api/v1/tasks/ID (no socket on this page: fresh.js
 * says why), its progress shown under the form with a Cancel button; once done, the view
 * loads again and the lightbox shows the new image, whose details say "Upscaled from". */
import { api, errorText } from "../../lib/api.js";
import { byId, el } from "../../lib/dom.js";
import { createUpscaleForm, progressText } from "../../lib/upscale.js";
import { refreshBoards } from "./boards.js";
import { say } from "./config.js";
import { reload } from "./loading.js";
import { indexOf } from "./state.js";
import { currentImage, openAt } from "./viewer.js";

const POLL_MS = 400;
const FINAL = ["done", "failed", "canceled"];
let form = null;
let box = null;
let bar = null;
let text = null;
let cancel = null;
let following = null; // the id of the upscale task followed

function showTask(task) {
  box.hidden = false;
  const p = task.progress || {};
  bar.max = Math.max(1, p.total || 1);
  bar.value = task.state === "done" ? bar.max : Math.min(p.step || 0, bar.max);
  text.textContent = progressText(task);
  box.dataset.state = task.state;
  cancel.hidden = FINAL.indexOf(task.state) !== -1;
}

function poll(id) {
  if (following !== id) return;
  api("GET", "/api/v1/tasks/" + encodeURIComponent(id)).then((res) => {
    if (following !== id) return;
    if (!res.ok || !res.data) {
      text.textContent = errorText(res, "Could not read the upscale's progress.");
      window.setTimeout(() => poll(id), POLL_MS * 5);
      return;
    }
    showTask(res.data);
    if (FINAL.indexOf(res.data.state) === -1) {
      window.setTimeout(() => poll(id), POLL_MS);
      return;
    }
    finished(res.data);
  });
}

function finished(task) {
  following = null;
  form.setBusy(false);
  refreshBoards();
  const made = (task.images || [])[0];
  if (task.state !== "done" || !made) return;
  say("Upscaled: " + task.width + " × " + task.height);
  reload().then(() => {
    const index = indexOf(made.id);
    if (index !== -1) openAt(index);
    else window.location.assign("/images/" + encodeURIComponent(made.id)); // not in this view
  });
}

function follow(task) {
  following = task.id;
  showTask(task);
  window.setTimeout(() => poll(task.id), POLL_MS);
}

export function initUpscaling() {
  form = createUpscaleForm({ idPrefix: "upscale", onSubmitted: follow });
  bar = el("progress", { id: "upscale-progress-bar", max: "1", value: "0" });
  text = el("span", { class: "upscale__progress-text", id: "upscale-progress-text" });
  cancel = el("button", { type: "button", class: "btn btn--tiny btn--danger", id: "upscale-cancel", text: "Cancel", hidden: true });
  box = el("div", { class: "upscale__progress", id: "upscale-progress", role: "status", "aria-live": "polite", hidden: true },
    [text, bar, cancel]);
  form.root.appendChild(box);
  cancel.addEventListener("click", () => {
    const id = following;
    if (!id) return;
    api("POST", "/api/v1/tasks/" + encodeURIComponent(id) + "/cancel").then((res) => {
      if (!res.ok) text.textContent = errorText(res, "Could not cancel the upscale.");
    });
  });
  const message = byId("detail-message");
  message.parentNode.insertBefore(form.root, message);
}

/** The lightbox shows another image (or the same one, changed). */
export function renderUpscale() {
  if (form) form.show(currentImage());
}
