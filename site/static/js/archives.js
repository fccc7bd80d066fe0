/* Daydream — ZIP archives built in the background (POST /api/v1/archives), for any
   page: ask for one, show its progress live in a small card in the corner, and offer
   the download when it is ready (a notification of the browser too, if allowed).

     DaydreamArchives.request({image_ids: [...]})   // or {board_id: "..."} or {all: true}
       .then(function (archive) { ... })            // the archive as first answered (202)
     DaydreamArchives.watch(archive)                // show one asked for earlier
     DaydreamArchives.useSocket(socket)             // take `archive` Socket.IO events live

   Needs the page's <meta name="csrf-token"> and site/static/css/archives.css.
   Without a socket it polls GET /api/v1/archives/{id} once a second. */
(function () {
  "use strict";
  var cards = {};   // archive id -> {el, timer, archive}
  var stack = null;

  /* The shared API call (app.js), sending the CSRF header on every method; resolves to
     the answer's data, or rejects with an Error carrying status and data. */
  function api(method, url, body) {
    return Daydream.api(method, url, body, { headers: { "X-CSRFToken": Daydream.csrfToken() } }).then(function (res) {
      var data = res.data || {};
      if (!res.ok) {
        var error = new Error((data.error && data.error.message)
          || (res.status ? "The request failed (" + res.status + ")." : res.error.message));
        error.status = res.status;
        error.data = data;
        throw error;
      }
      return data;
    });
  }

  function size(bytes) {
    if (bytes == null) return "";
    if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)) + " KB";
    return (bytes / (1024 * 1024)).toFixed(bytes < 100 * 1024 * 1024 ? 1 : 0) + " MB";
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function container() {
    if (!stack) {
      stack = document.createElement("div");
      stack.className = "archive-toasts";
      stack.id = "archive-toasts";
      stack.setAttribute("aria-live", "polite");
      document.body.appendChild(stack);
    }
    return stack;
  }

  function card(archive) {
    var entry = cards[archive.id];
    if (entry) return entry;
    var el = document.createElement("div");
    el.className = "archive-toast";
    el.dataset.archiveId = archive.id;
    el.innerHTML = '<p class="archive-toast__text"></p><progress class="archive-toast__bar" max="1" value="0"></progress>' +
      '<div class="archive-toast__actions"><a class="btn btn--primary btn--small archive-toast__download" hidden>Download</a>' +
      '<button type="button" class="btn btn--ghost btn--small archive-toast__close">Close</button></div>';
    el.querySelector(".archive-toast__close").addEventListener("click", function () { forget(archive.id); });
    container().appendChild(el);
    entry = cards[archive.id] = { el: el, timer: null, archive: archive };
    return entry;
  }

  function forget(id) {
    var entry = cards[id];
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.el.remove();
    delete cards[id];
  }

  function notify(archive) {
    if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
    try { new Notification("Your archive is ready", { body: plural(archive.image_count, "image", "images") + ", " + size(archive.size_bytes) }); }
    catch (e) { /* some browsers allow notifications from service workers only */ }
  }

  function render(archive) {
    var entry = card(archive);
    var previous = entry.archive.state;
    entry.archive = archive;
    var el = entry.el;
    el.dataset.state = archive.state;
    var text = el.querySelector(".archive-toast__text");
    var bar = el.querySelector(".archive-toast__bar");
    var link = el.querySelector(".archive-toast__download");
    var done = archive.progress ? archive.progress.done : 0;
    var total = archive.progress ? archive.progress.total : archive.image_count;
    bar.max = Math.max(1, total);
    bar.value = archive.state === "ready" ? bar.max : done;
    bar.hidden = archive.state !== "queued" && archive.state !== "building";
    link.hidden = archive.state !== "ready";
    if (archive.state === "queued") text.textContent = "Your ZIP of " + plural(total, "image", "images") + " is waiting to be made…";
    else if (archive.state === "building") text.textContent = "Packing your ZIP: " + done + " of " + total + " images…";
    else if (archive.state === "ready") {
      text.textContent = "Your ZIP is ready: " + plural(archive.image_count, "image", "images") + ", " + size(archive.size_bytes) + ".";
      link.href = archive.url;
      link.setAttribute("download", "");
      if (previous !== "ready") notify(archive);
    } else if (archive.state === "failed") text.textContent = archive.error || "The ZIP could not be made.";
    else if (archive.state === "expired") text.textContent = "This ZIP has expired; ask for a new one.";
    document.dispatchEvent(new CustomEvent("daydream:archive", { detail: archive }));
    return archive;
  }

  function poll(id) {
    var entry = cards[id];
    if (!entry) return;
    clearTimeout(entry.timer);
    var state = entry.archive.state;
    if (state !== "queued" && state !== "building") return;
    entry.timer = setTimeout(function () {
      api("GET", "/api/v1/archives/" + encodeURIComponent(id)).then(function (archive) {
        render(archive);
        poll(id);
      }).catch(function () { poll(id); });
    }, 1000);
  }

  function watch(archive) {
    render(archive);
    poll(archive.id);
    return archive;
  }

  function request(body) {
    if ("Notification" in window && Notification.permission === "default") {
      try { Notification.requestPermission(); } catch (e) { /* not allowed here */ }
    }
    return api("POST", "/api/v1/archives", body).then(watch);
  }

  function useSocket(socket) {
    if (socket && typeof socket.on === "function") {
      socket.on("archive", function (archive) {
        if (cards[archive.id]) { render(archive); poll(archive.id); }
      });
    }
  }

  window.DaydreamArchives = { request: request, watch: watch, useSocket: useSocket, forget: forget };
})();
