/* Daydream gallery — "Edit" in the lightbox's details panel (lib/edit.js's form, issue 25):
 * a model that edits changes the picture as the instruction says, its cost shown before
 * submitting. The task is followed by polling GET /api/v1/tasks/ID (as upscaling.js
 * follows an upscale), its progress shown under the form with a Cancel button; once done,
 * the view loads again and the lightbox shows the edited picture, whose details say
 * "Edited from". The form shows only where a model that edits is enabled. */
import { api, errorText } from "../../lib/api.js";
import { byId, el } from "../../lib/dom.js";
import { createEditForm } from "../../lib/edit.js";
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
let following = null; // the id of the edit task followed

/** The followed task in words. */
function words(task) {
  const p = task.progress || {};
  if (task.state === "queued") return task.position ? "Waiting in the queue: position " + task.position : "Waiting in the queue…";
  if (task.state === "running") return p.total ? "Editing… step " + (p.step || 0) + " of " + p.total : "Editing…";
  if (task.state === "done") return "Done.";
  if (task.state === "canceled") return "Canceled; your tokens were refunded.";
  return task.error || "The edit failed; your tokens were refunded.";
}

function showTask(task) {
  box.hidden = false;
  const p = task.progress || {};
  bar.max = Math.max(1, p.total || 1);
  bar.value = task.state === "done" ? bar.max : Math.min(p.step || 0, bar.max);
  text.textContent = words(task);
  box.dataset.state = task.state;
  cancel.hidden = FINAL.indexOf(task.state) !== -1;
}

function poll(id) {
  if (following !== id) return;
  api("GET", "/api/v1/tasks/" + encodeURIComponent(id)).then((res) => {
    if (following !== id) return;
    if (!res.ok || !res.data) {
      text.textContent = errorText(res, "Could not read the edit's progress.");
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
  say("Edited: " + task.prompt);
  reload().then(() => {
    const index = indexOf(made.id);
    if (index !== -1) openAt(index);
    else window.location.assign("/images/" + encodeURIComponent(made.id)); // not in this view
  });
}

function follow(task) {
  following = task.id;
  form.setBusy(true);
  showTask(task);
  window.setTimeout(() => poll(task.id), POLL_MS);
}

export function initEditing() {
  form = createEditForm({ idPrefix: "edit", onSubmitted: follow });
  bar = el("progress", { id: "edit-progress-bar", max: "1", value: "0" });
  text = el("span", { class: "upscale__progress-text", id: "edit-progress-text" });
  cancel = el("button", { type: "button", class: "btn btn--tiny btn--danger", id: "edit-cancel", text: "Cancel", hidden: true });
  box = el("div", { class: "upscale__progress", id: "edit-progress", role: "status", "aria-live": "polite", hidden: true },
    [text, bar, cancel]);
  form.root.appendChild(box);
  form.root.hidden = true;
  cancel.addEventListener("click", () => {
    const id = following;
    if (!id) return;
    api("POST", "/api/v1/tasks/" + encodeURIComponent(id) + "/cancel").then((res) => {
      if (!res.ok) text.textContent = errorText(res, "Could not cancel the edit.");
    });
  });
  const message = byId("detail-message");
  message.parentNode.insertBefore(form.root, message);
}

/** The lightbox shows another image (or the same one, changed). */
export function renderEditing() {
  if (form) form.show(currentImage());
}
