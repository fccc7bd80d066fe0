/* Daydream studio — keeping the timeline true: the task list (GET /api/v1/tasks), single
 * tasks, cancel, the queue line, and live updates over Socket.IO (task and queue events)
 * with polling as the safety net while there is no connection. A `task` event is about
 * one of our tasks' own moves; a `queue` event says the queue changed, and our queued
 * cards then read their positions from GET /api/v1/queue (positions.js). */
import { api, errorText } from "../../lib/api.js";
import { $, byId } from "../../lib/dom.js";
import { getSocket, on } from "../../lib/socket.js";
import { config, TASK_LIST_URL } from "./config.js";
import { redrawEstimate, refreshEstimate, scheduleEstimate } from "./estimate.js";
import { createCoalescer, positionPatches } from "./positions.js";
import { refreshBalance } from "./settings.js";
import { store } from "./store.js";
import { cardFor, hideTimelineAlert, markLoaded, showCardMessage, showTimelineAlert, updateEmptyState } from "./timeline.js";

const POLL_MS = 4000;

let socketConnected = false;
let workers = null;
let lastQueue = null;
let queueEstimateTimer = null;
const fetching = new Set();
const fetchAgain = new Set();

/* ---------- the connection and the queue line ---------- */

function setConnection(state, text) {
  const node = byId("connection");
  if (!node) return;
  node.dataset.state = state;
  const label = $(".connection__text", node);
  if (label) {
    label.textContent = text;
    label.hidden = text === "";
  }
  node.hidden = false;
}

function renderQueue(queue) {
  const node = byId("queue-status");
  if (!node) return;
  if (queue) lastQueue = queue;
  const q = lastQueue;
  if (!q) return;
  const parts = [];
  const queued = q.queued || 0;
  const running = q.running || 0;
  if (!queued && !running) parts.push("Queue is empty");
  else parts.push("Queue: " + queued + " waiting · " + running + " running");
  const noWorker = workers === 0;
  if (noWorker) parts.push("no worker online — tasks wait until one starts");
  node.textContent = parts.join(" · ");
  node.classList.toggle("is-warning", noWorker);
}

/** GET the queue: the line's counts and workers, and our queued tasks' positions. */
export function refreshQueue() {
  return api("GET", "/api/v1/queue").then((res) => {
    if (!res.ok || !res.data) return;
    if (typeof res.data.workers === "number") workers = res.data.workers;
    renderQueue({ queued: res.data.queued, running: res.data.running });
    positionPatches(store.tasks.values(), res.data.positions).forEach((patch) => store.upsert(patch));
  });
}

// The queue's events come with every change anywhere: positions are read once per while.
const positionRefresh = createCoalescer(refreshQueue);

function hasQueued() {
  return Array.from(store.tasks.values()).some((task) => task.state === "queued");
}

/* ---------- tasks from the server ---------- */

/** GET one task and merge it in; a second call while one is in flight runs once more after it. */
export function fetchTask(id) {
  if (fetching.has(id)) {
    fetchAgain.add(id);
    return;
  }
  fetching.add(id);
  api("GET", "/api/v1/tasks/" + encodeURIComponent(id)).then((res) => {
    fetching.delete(id);
    if (!res.ok || !res.data) {
      store.dropEarly(id);
      fetchAgain.delete(id);
      return;
    }
    store.settle(res.data);
    if (fetchAgain.has(id)) {
      fetchAgain.delete(id);
      fetchTask(id);
    }
  });
}

/** A `task` event of the socket. */
export function applyEvent(ev) {
  const before = store.get(ev.id);
  const action = store.applyEvent(ev, !config.viewedSession); // an earlier session shows no new tasks
  // One of ours started: the estimate line's wait is now its time left (what its card shows).
  if (ev.state === "running" && before && before.state === "queued") refreshEstimate();
  else if ("eta_s" in ev) redrawEstimate(); // the line follows our running cards' time left
  if (action === "fetch") {
    fetchTask(ev.id);
  } else if (action === "final") {
    // Final: fetch the whole task (images, duration, refund) and the new balance.
    fetchTask(ev.id);
    refreshBalance();
    refreshQueue();
    scheduleEstimate(600);
  }
}

function loadTimelineOnce() {
  return api("GET", TASK_LIST_URL).then((res) => {
    if (!res.ok || !res.data || !Array.isArray(res.data.items)) {
      if (res.status === 401) {
        showTimelineAlert("You were signed out. ", "/login?next=/studio", "Sign in again");
      } else {
        showTimelineAlert("Could not load your tasks: " + errorText(res, "unknown error"));
      }
      return;
    }
    hideTimelineAlert();
    // Oldest first, so that each card lands above the previous one.
    res.data.items.slice().reverse().forEach((task) => store.upsert(task));
  });
}

/* Loads coalesce: a request made while one is running runs once more afterwards. */
let loading = null;
let loadAgain = false;

export function loadTimeline() {
  if (loading) {
    loadAgain = true;
    return loading;
  }
  loading = loadTimelineOnce().then(() => {
    loading = null;
    markLoaded();
    if (loadAgain) {
      loadAgain = false;
      return loadTimeline();
    }
    return undefined;
  });
  updateEmptyState();
  return loading;
}

/** Cancel a queued or running task (the server refunds it). */
export function cancelTask(id) {
  const card = cardFor(id);
  const button = card ? $(".task-cancel", card) : null;
  if (button) button.disabled = true;
  api("POST", "/api/v1/tasks/" + encodeURIComponent(id) + "/cancel").then((res) => {
    if (button) button.disabled = false;
    if (res.ok && res.data && res.data.id) {
      showCardMessage(id, "");
      store.upsert(res.data);
    } else {
      showCardMessage(id, errorText(res, "Could not cancel this task."));
      fetchTask(id);
    }
    refreshBalance();
    scheduleEstimate(600);
  });
}

/* ---------- live updates ---------- */

/** Connect the socket (or say that live updates are off) and poll while it is down. */
export function startLive() {
  const socket = getSocket();
  if (!socket) {
    setConnection("disconnected", "Live updates unavailable — refreshing every few seconds");
  } else {
    on("connect", () => {
      socketConnected = true;
      setConnection("connected", "Live");
      // Events may have been missed while we were away: the list is the truth.
      loadTimeline();
      refreshQueue();
      refreshBalance();
    });
    on("disconnect", () => {
      socketConnected = false;
      setConnection("disconnected", "Reconnecting…");
    });
    on("connect_error", () => {
      socketConnected = false;
      setConnection("disconnected", "Offline — retrying…");
    });
    on("task", applyEvent);
    on("queue", (queue) => {
      renderQueue(queue);
      if (hasQueued()) positionRefresh.schedule(); // our queued cards' positions moved
      // The wait depends on the queue: keep the estimate current, without hammering the server.
      window.clearTimeout(queueEstimateTimer);
      queueEstimateTimer = window.setTimeout(() => scheduleEstimate(0), 1500);
    });
  }
  // Safety net: without a live connection, poll while something is still in progress.
  window.setInterval(() => {
    if (!socketConnected && store.hasUnfinished() && !document.hidden) loadTimeline();
  }, POLL_MS);
  return socket;
}
