/* Daydream — the staff queue page (/admin/queue): the tasks waiting and running and the
 * workers, refreshed every 1.5 s while the page is visible; staff cancel any task (its
 * owner gets the tokens back). Rows are built here: the queue changes by the second. */
import { api, errorText } from "../lib/api.js";
import { byId, el } from "../lib/dom.js";
import { plural } from "../lib/format.js";
import { confirmAction } from "../lib/confirm.js";
import { showAlert } from "../lib/forms.js";

const REFRESH_MS = 1500;
let timer = null;

function cancelTask(task, button) {
  confirmAction({
    title: "Cancel this task of " + task.owner.username + "?", text: "They get their tokens back.",
    ok: "Cancel the task", cancel: "Keep it", danger: true,
  }).then((yes) => {
    if (!yes) return;
    button.disabled = true;
    api("POST", "/api/v1/admin/tasks/" + encodeURIComponent(task.id) + "/cancel").then((res) => {
      if (!res.ok && res.status !== 409) showAlert("queue-error", errorText(res, "The task was not canceled."));
      refresh();
    });
  });
}

/** "3/20 · 12 s left" for a running task, "waiting" otherwise. */
function progressText(task) {
  const total = (task.progress && task.progress.total) || 1;
  const step = (task.progress && task.progress.step) || 0;
  if (task.state !== "running") return "waiting";
  return step + "/" + total + (task.eta_s ? " · " + Math.ceil(task.eta_s) + " s left" : "");
}

function taskRow(task) {
  const cancel = el("button", { type: "button", class: "btn btn--danger btn--tiny task-cancel", text: "Cancel", "aria-label": "Cancel task of " + task.owner.username });
  cancel.addEventListener("click", () => cancelTask(task, cancel));
  const total = (task.progress && task.progress.total) || 1;
  const step = (task.progress && task.progress.step) || 0;
  return el("tr", { class: "queue-row", dataset: { taskId: task.id, state: task.state } }, [
    el("td", { "data-label": "#", text: task.state === "running" ? "▶" : String(task.position || "") }),
    el("td", { "data-label": "Owner", class: "queue-owner", text: task.owner.username }),
    el("td", { "data-label": "State" }, [el("span", { class: "pill pill--" + task.state, text: task.state })]),
    el("td", { "data-label": "Prompt", class: "prompt-cell", text: task.prompt }),
    el("td", {
      "data-label": "Parameters", class: "params",
      text: task.width + "×" + task.height + ", " + task.steps + " steps, " + task.samples + " × · " + task.model + " · " + plural(task.cost, "token", "tokens"),
    }),
    el("td", { "data-label": "Progress", class: "task-progress-cell" }, [
      el("progress", { max: String(total), value: String(step) }), " " + progressText(task),
    ]),
    el("td", { "data-label": "" }, [cancel]),
  ]);
}

function workerRow(worker) {
  return el("tr", { class: "worker-row", dataset: { worker: worker.name } }, [
    el("td", { "data-label": "Worker" }, [el("code", { class: "task-ref", text: worker.name })]),
    el("td", { "data-label": "Alive" }, [el("span", { class: "pill " + (worker.alive ? "pill--ok" : "pill--dead"), text: worker.alive ? "alive" : "silent" })].concat(
      // The image check cannot run (DAYDREAM_SAFETY on, no classifier): it takes no tasks.
      worker.safety && worker.safety !== "off" && worker.safety !== "ok"
        ? [" ", el("span", { class: "pill pill--dead worker-safety", text: "not taking tasks" }), " image check " + worker.safety]
        : []).concat(
      // The images folder's disk is almost full (DAYDREAM_MIN_FREE_MB): it takes no tasks.
      worker.disk && worker.disk !== "ok"
        ? [" ", el("span", { class: "pill pill--dead worker-disk", text: "not taking tasks" }), " disk " + worker.disk]
        : [])),
    el("td", { "data-label": "Current task", text: worker.current_task ? worker.current_task + " (" + worker.current_user + ")" : "idle" }),
    el("td", { "data-label": "Model", text: worker.model || "—" }),
    el("td", { "data-label": "Jobs done", class: "num-col", text: String(worker.jobs_done) }),
    el("td", { "data-label": "Last heartbeat", text: worker.last_heartbeat_age_s === null ? "—" : Math.round(worker.last_heartbeat_age_s) + " s ago" }),
  ]);
}

function refresh() {
  window.clearTimeout(timer);
  return api("GET", "/api/v1/admin/queue").then((res) => {
    if (!res.ok) {
      showAlert("queue-error", errorText(res, "Could not load the queue."));
    } else {
      showAlert("queue-error", "");
      const view = res.data;
      byId("queue-summary").textContent = view.queued + " waiting, " + view.running + " running, " +
        plural(view.workers.length, "worker", "workers") + ". Updated " + new Date().toLocaleTimeString() + ".";
      byId("queue-body").replaceChildren(...view.items.map(taskRow));
      byId("queue-empty").hidden = view.items.length > 0;
      byId("workers-body").replaceChildren(...view.workers.map(workerRow));
      byId("workers-empty").hidden = view.workers.length > 0;
    }
    if (!document.hidden) timer = window.setTimeout(refresh, REFRESH_MS);
  });
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
refresh();
