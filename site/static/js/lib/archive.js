/* Daydream — ZIP archives built in the background by the archive worker (docs/API.md):
 * the one place that asks for one, follows its progress and offers the download. The
 * gallery (/images) and the account page ("Download everything") build on it.
 *
 * API (stable):
 *
 *   startArchive(body) → Promise<answer>
 *     POST /api/v1/archives with {image_ids: [...]}, {board_id} or {all: true}. Resolves
 *     (never rejects) to lib/api.js's {ok, status, data, error, retryAfter}; data is the
 *     archive (202, usually "queued"). Refusals: 404 (no such image or board), 409
 *     no_images, 422, 429 too_many_archives (with retryAfter). It first lets the page's
 *     socket connect (1.5 s at most), so that no `archive` event of the new archive is
 *     missed and trackArchive needs no request at all.
 *
 *   trackArchive(archiveOrId, {onProgress, onReady, onFailed, pollMs, quietMs}) → stop()
 *     Follows one archive until it is ready, failed or expired. The callbacks get the
 *     archive {id, state, progress: {done, total}, image_count, size_bytes, url, error, ...}:
 *       onProgress(archive)  while it is queued or building (at once when given an archive);
 *       onReady(archive)     once, when ready: archive.url downloads it;
 *       onFailed(archive)    once, when failed or expired, or when it cannot be read any more
 *                            (404, signed out): then archive is {id, state: "failed", error}.
 *     Live from the `archive` Socket.IO event (lib/socket.js: the page loads
 *     vendor/socket.io.min.js with defer). GET /api/v1/archives/{id} is the fallback only:
 *     at once when given an id alone; once when the socket (re)connects, since an event
 *     may have been sent before it joined; when no event came for quietMs (default 5000);
 *     and every pollMs (default 1000) while the page has no connected socket.
 *     stop() ends it: no more callbacks, no more requests (calling it again is harmless).
 *     While something is tracked the page's socket is kept connected; a few seconds after
 *     the last one finished it is disconnected again, unless something else on the page
 *     listens for "task" or "queue" events on it (an open socket counts as an open studio
 *     page for "cancel my tasks when I leave", views/sockets.py).
 *
 *   isFinished(archive) → true once ready, failed or expired
 *   archiveProgress(archive) → {done, total, fraction}: fraction 0…1, null when unknown
 *   archiveText(archive, what = "your images") → a sentence saying where the ZIP is; when
 *     `what` counts the images already ("3 images"), the count is said once
 *
 *   archiveWidget(container, options) → widget: shows one archive at a time in `container`
 *     (un-hides it; sets data-state, and the class is-error when it failed) with
 *       [data-archive-text]  the sentence,
 *       [data-archive-bar]   a <progress> (no value while waiting: indeterminate),
 *       [data-archive-link]  an <a download> shown once ready;
 *     found inside the container, or given as options.text / options.bar / options.link,
 *     or else made at its end. options: {what: "your images", download: "link" (show the
 *     link) | "auto" (start the download when ready), hideAfterMs (hide that long after
 *     ready), hideErrorAfterMs, onProgress(archive), onReady(archive), onFailed(archive)}.
 *       widget.start(body, what?) → Promise<archive | null>: startArchive, then track it;
 *                                   null when refused (the error is shown)
 *       widget.track(archiveOrId, what?) → stop(): follow one asked for earlier
 *       widget.show(archive)      render a state     widget.fail(message)   show an error
 *       widget.hide()             stop and hide      widget.busy()          following one?
 */
import { api, errorText } from "./api.js";
import { el } from "./dom.js";
import { isNumber, plural } from "./format.js";
import { getSocket, on } from "./socket.js";
import { formatBytes } from "./bytes.js";

const RELEASE_AFTER_MS = 4000;
const CONNECT_WAIT_MS = 1500;
const MAX_BACKOFF_MS = 15000;

export function isFinished(archive) {
  return !!archive && (archive.state === "ready" || archive.state === "failed" || archive.state === "expired");
}

export function archiveProgress(archive) {
  const a = archive || {};
  const p = a.progress && typeof a.progress === "object" ? a.progress : {};
  const total = isNumber(p.total) && p.total > 0 ? p.total : isNumber(a.image_count) ? a.image_count : 0;
  let done = isNumber(p.done) ? Math.max(0, Math.min(p.done, total)) : 0;
  if (a.state === "ready") done = total;
  let fraction = total > 0 ? done / total : null;
  if (a.state === "ready") fraction = 1;
  return { done, total, fraction };
}

export function archiveText(archive, what = "your images") {
  const a = archive || {};
  const { done, total } = archiveProgress(a);
  const images = plural(total, "image", "images");
  // `what` may count the images itself ("3 images"): then the count is not said twice.
  const counted = !!total && new RegExp("(^|[^0-9])" + images + "\\b").test(String(what));
  switch (a.state) {
    case "queued":
      return "Waiting to start the ZIP of " + what + (total && !counted ? " (" + images + ")" : "") + "…";
    case "building":
      return counted ? "Packing the ZIP of " + what + ": " + done + " done…"
        : "Packing the ZIP of " + what + ": " + done + " of " + images + "…";
    case "ready": {
      const size = formatBytes(a.size_bytes);
      if (counted) return "The ZIP of " + what + " is ready" + (size ? ": " + size : "") + ".";
      return "The ZIP of " + what + " is ready: " + images + (size ? ", " + size : "") + ".";
    }
    case "failed":
      return a.error || "The ZIP could not be made. Try again.";
    case "expired":
      return "That ZIP has expired; ask for a new one.";
    default:
      return "";
  }
}

export function startArchive(body) {
  const socket = holdSocket();
  return whenConnected(socket, CONNECT_WAIT_MS)
    .then(() => api("POST", "/api/v1/archives", body, {
      messages: { 404: "Archives are not available on this server." },
    }))
    .then((res) => {
      if (socket) releaseSocket(socket); // a tracker holds it from now on
      return res;
    });
}

/* ---- the socket, held while anything is tracked ---- */

let holders = 0;
let releaseTimer = null;

/** Resolves once the socket is connected, or after `ms` (or at once without a socket). */
function whenConnected(socket, ms) {
  if (!socket || socket.connected) return Promise.resolve();
  return new Promise((resolve) => {
    let off = () => {};
    const timer = setTimeout(() => { off(); resolve(); }, ms);
    off = on("connect", () => { clearTimeout(timer); off(); resolve(); });
  });
}

function holdSocket() {
  const socket = getSocket();
  if (!socket) return null;
  holders++;
  clearTimeout(releaseTimer);
  releaseTimer = null;
  if (!socket.connected && !socket.active && typeof socket.connect === "function") socket.connect();
  return socket;
}

function releaseSocket(socket) {
  holders = Math.max(0, holders - 1);
  if (holders) return;
  clearTimeout(releaseTimer);
  releaseTimer = setTimeout(() => {
    releaseTimer = null;
    if (holders) return;
    const listens = (event) => typeof socket.hasListeners === "function" && socket.hasListeners(event);
    if (!listens("task") && !listens("queue") && typeof socket.disconnect === "function") socket.disconnect();
  }, RELEASE_AFTER_MS);
}

/* ---- following one archive ---- */

function rank(archive) {
  return archive.state === "queued" ? 0 : archive.state === "building" ? 1 : 2;
}

function doneOf(archive) {
  return archive.progress && isNumber(archive.progress.done) ? archive.progress.done : 0;
}

/** Report an exception of a callback without breaking the tracker or the socket. */
function report(err) {
  setTimeout(() => { throw err; }, 0);
}

export function trackArchive(archiveOrId, handlers = {}) {
  const given = archiveOrId && typeof archiveOrId === "object" ? archiveOrId : null;
  const id = given ? String(given.id) : String(archiveOrId || "");
  const pollMs = handlers.pollMs || 1000;
  const quietMs = handlers.quietMs || 5000;
  const offs = [];
  let stopped = false;
  let timer = null;
  let inFlight = false;
  let failures = 0;
  let last = null;
  const socket = holdSocket();

  function stop() {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    offs.forEach((off) => off());
    if (socket) releaseSocket(socket);
  }

  function call(name, archive) {
    const fn = handlers[name];
    if (typeof fn !== "function") return;
    try { fn(archive); } catch (err) { report(err); }
  }

  function update(archive) {
    if (stopped || !archive || String(archive.id) !== id) return;
    // An answer older than what is known already (a slow GET overtaken by events).
    if (last && (rank(archive) < rank(last) || (rank(archive) === 1 && rank(last) === 1 && doneOf(archive) < doneOf(last)))) return;
    last = archive;
    if (archive.state === "ready") {
      if (!archive.url) archive = Object.assign({}, archive, { url: "/api/v1/archives/" + encodeURIComponent(id) + "/download" });
      stop();
      call("onReady", archive);
    } else if (archive.state === "failed" || archive.state === "expired") {
      stop();
      call("onFailed", archive);
    } else {
      call("onProgress", archive);
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (stopped) return;
    const live = !!(socket && socket.connected);
    const wait = live ? quietMs : Math.min(MAX_BACKOFF_MS, pollMs * Math.pow(2, Math.min(failures, 4)));
    timer = setTimeout(poll, wait);
  }

  function poll() {
    if (stopped || inFlight) return; // an answer on its way schedules the next look
    inFlight = true;
    clearTimeout(timer);
    api("GET", "/api/v1/archives/" + encodeURIComponent(id), undefined, { reauth: false }).then((res) => {
      inFlight = false;
      if (stopped) return;
      if (res.ok && res.data) {
        failures = 0;
        update(res.data);
      } else if (res.status === 404 || res.status === 401 || res.status === 403) {
        const error = res.status === 404 ? "This ZIP no longer exists; ask for a new one."
          : errorText(res, "You are signed out; sign in again.");
        stop();
        call("onFailed", { id, state: "failed", progress: last ? last.progress : null, error });
        return;
      } else {
        failures++;
      }
      schedule();
    });
  }

  if (socket) {
    offs.push(on("archive", (archive) => {
      if (!archive || String(archive.id) !== id) return;
      update(archive);
      schedule();
    }));
    offs.push(on("connect", () => poll()));
  }
  if (given) update(given);
  if (stopped) return stop;
  if (!given) poll();
  else schedule();
  return stop;
}

/* ---- a progress card ---- */

export function archiveWidget(container, options = {}) {
  const part = (name, make) => options[name] || container.querySelector("[data-archive-" + name + "]") ||
    container.appendChild(make());
  const text = part("text", () => el("span", { class: "archive-widget__text", "data-archive-text": true }));
  const bar = part("bar", () => el("progress", { class: "archive-widget__bar", max: "1", "data-archive-bar": true }));
  const link = part("link", () => el("a", {
    class: "btn btn--small btn--primary archive-widget__link", "data-archive-link": true,
    href: "#", download: true, hidden: true, text: "Download the ZIP",
  }));
  let what = options.what || "your images";
  let current = null; // the run being followed (or the POST on its way)
  let hideTimer = null;

  function callback(name, archive) {
    if (typeof options[name] === "function") {
      try { options[name](archive); } catch (err) { report(err); }
    }
  }

  function show(archive) {
    clearTimeout(hideTimer);
    const failed = archive.state === "failed" || archive.state === "expired";
    container.hidden = false;
    container.dataset.state = archive.state || "";
    container.classList.toggle("is-error", failed);
    text.textContent = archiveText(archive, what);
    const { fraction } = archiveProgress(archive);
    bar.hidden = failed;
    if (archive.state === "queued" || fraction === null) bar.removeAttribute("value");
    else { bar.max = 1; bar.value = fraction; }
    const ready = archive.state === "ready" && !!archive.url;
    link.hidden = !ready;
    if (ready) link.href = archive.url;
  }

  function hideLater(ms) {
    clearTimeout(hideTimer);
    if (ms) hideTimer = setTimeout(() => { if (!current) container.hidden = true; }, ms);
  }

  function stop() {
    const run = current;
    current = null;
    if (run && run.stop) run.stop();
  }

  function finish(archive) {
    show(archive);
    if (archive.state === "ready") {
      if (options.download === "auto") {
        const a = el("a", { href: archive.url, download: true, hidden: true });
        document.body.appendChild(a);
        a.click();
        a.remove();
        text.textContent = "Your ZIP of " + what + " is downloading.";
      }
      hideLater(options.hideAfterMs);
      callback("onReady", archive);
    } else {
      hideLater(options.hideErrorAfterMs);
      callback("onFailed", archive);
    }
  }

  function track(archiveOrId, label) {
    stop();
    if (label) what = label;
    if (!archiveOrId || typeof archiveOrId !== "object") {
      show({ state: "queued" });
      text.textContent = "Looking up the ZIP…";
    }
    const run = { stop: null };
    current = run;
    run.stop = trackArchive(archiveOrId, {
      onProgress: (archive) => {
        if (current !== run) return;
        show(archive);
        callback("onProgress", archive);
      },
      onReady: (archive) => { if (current === run) { current = null; finish(archive); } },
      onFailed: (archive) => { if (current === run) { current = null; finish(archive); } },
    });
    return () => {
      if (current === run) current = null;
      run.stop();
    };
  }

  function fail(message) {
    stop();
    show({ state: "failed", error: message });
    hideLater(options.hideErrorAfterMs);
  }

  function start(body, label) {
    stop();
    if (label) what = label;
    clearTimeout(hideTimer);
    container.hidden = false;
    container.dataset.state = "starting";
    container.classList.remove("is-error");
    text.textContent = "Preparing a ZIP of " + what + "…";
    bar.hidden = false;
    bar.removeAttribute("value");
    link.hidden = true;
    const pending = { stop: null };
    current = pending;
    return startArchive(body).then((res) => {
      if (current !== pending) return null; // stopped or replaced meanwhile
      current = null;
      if (!res.ok || !res.data || !res.data.id) {
        fail(errorText(res, "Could not start the ZIP."));
        return null;
      }
      track(res.data);
      return res.data;
    });
  }

  function hide() {
    stop();
    clearTimeout(hideTimer);
    container.hidden = true;
  }

  return { start, track, show, fail, hide, busy: () => current !== null };
}
