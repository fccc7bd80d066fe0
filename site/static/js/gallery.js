/* Daydream gallery (/images): boards, filters, an infinitely scrolling grid of
 * thumbnails, multi-select with bulk actions, and a lightbox with the image's details.
 *
 * Layout of this file:
 *   1. basics: DOM helpers, the API client, dialogs
 *   2. the view (board + filters) and the address bar
 *   3. loading pages: offset/limit with the first page's `before` snapshot, so images
 *      made meanwhile never shift later pages; removing shown images lowers the offset
 *   4. the grid and the selection (click, shift-click, ctrl-click, select all)
 *   5. bulk actions and ZIP downloads (POST /api/v1/archives, polled until ready)
 *   6. boards: the sidebar, create, rename, delete, "new results go here"
 *   7. the lightbox: thumbnail first, the full PNG on demand, ←/→/Esc, details
 *   8. live updates and start-up
 *
 * Contract: /api/v1 (API.md). No inline scripts: the server's data comes in #gallery-config.
 */
(function () {
  "use strict";

  /* ------------------------------------------------------------------ 1. basics */

  var config = {};
  try {
    config = JSON.parse((document.getElementById("gallery-config") || {}).textContent || "{}") || {};
  } catch (err) {
    config = {};
  }
  var PAGE = 60;
  var BOARD_KEY = "daydream.board";

  var byId = Daydream.byId;
  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  var el = Daydream.el;

  function svg(path) {
    var ns = "http://www.w3.org/2000/svg";
    var node = document.createElementNS(ns, "svg");
    node.setAttribute("viewBox", "0 0 24 24");
    node.setAttribute("aria-hidden", "true");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    node.appendChild(p);
    return node;
  }
  var STAR = "M12 3.8l2.5 5.2 5.7.8-4.1 4 1 5.6L12 16.7l-5.1 2.7 1-5.6-4.1-4 5.7-.8z";
  var CHECK = "M5 12.5l4.5 4.5L19 7.5";

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }
  function shorten(text, n) {
    text = String(text || "");
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }
  function say(text) {
    var region = byId("gallery-sr");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 40);
  }
  function remember(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (err) { /* storage may be off */ }
  }
  function recall(key) {
    try { return window.localStorage.getItem(key); } catch (err) { return null; }
  }

  var dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function formatDate(iso) {
    var t = Date.parse(iso || "");
    return isNaN(t) ? "" : dateFormat.format(new Date(t));
  }

  /** Resolves (never rejects) to {ok, status, data, error}: see app.js. */
  function api(method, path, body) {
    return Daydream.api(method, path, body, { messages: { other: "The server answered {status}. Please try again." } });
  }

  function errorText(res, fallback) {
    return (res && res.error && res.error.message) || fallback;
  }

  /* A dialog for confirmations and names. options: {title, text, ok, danger, choices,
   * input: {label, value}, submit(value, choice) -> Promise<error message or null>}.
   * Resolves to {ok, value, choice}. */
  var dialog = byId("confirm-dialog");
  var dialogForm = byId("confirm-form");
  var dialogState = null;

  function ask(options) {
    return new Promise(function (resolve) {
      byId("confirm-title").textContent = options.title || "Are you sure?";
      var text = byId("confirm-text");
      text.textContent = options.text || "";
      text.hidden = !options.text;
      byId("confirm-choices").hidden = !options.choices;
      if (options.choices) {
        $all('input[name="board-images"]', dialog).forEach(function (r) { r.checked = r.value === "keep"; });
        byId("confirm-delete-images").textContent = options.choicesLabel || "Delete its images too";
      }
      var field = byId("confirm-field");
      var input = byId("confirm-input");
      field.hidden = !options.input;
      byId("confirm-error").hidden = true;
      input.removeAttribute("aria-invalid");
      if (options.input) {
        byId("confirm-label").textContent = options.input.label || "Name";
        input.value = options.input.value || "";
      }
      var ok = byId("confirm-ok");
      ok.textContent = options.ok || "OK";
      ok.className = "btn btn--small " + (options.danger ? "btn--danger" : "btn--primary");
      ok.disabled = false;
      dialogState = { options: options, resolve: resolve };
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
      window.setTimeout(function () { (options.input ? input : ok).focus(); if (options.input) input.select(); }, 30);
    });
  }

  function finishDialog(result) {
    var state = dialogState;
    dialogState = null;
    if (dialog.open) dialog.close();
    if (state) state.resolve(result);
  }

  if (dialogForm) {
    dialogForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var state = dialogState;
      if (!state) return;
      var value = byId("confirm-input").value;
      var choiceInput = $('input[name="board-images"]:checked', dialog);
      var choice = choiceInput ? choiceInput.value : null;
      if (!state.options.submit) {
        finishDialog({ ok: true, value: value, choice: choice });
        return;
      }
      var ok = byId("confirm-ok");
      ok.disabled = true;
      state.options.submit(value, choice).then(function (message) {
        ok.disabled = false;
        if (message) {
          var error = byId("confirm-error");
          error.textContent = message;
          error.hidden = false;
          byId("confirm-input").setAttribute("aria-invalid", "true");
          byId("confirm-input").focus();
          return;
        }
        finishDialog({ ok: true, value: value, choice: choice });
      });
    });
    dialog.addEventListener("cancel", function () { finishDialog({ ok: false }); });
    byId("confirm-cancel").addEventListener("click", function () { finishDialog({ ok: false }); });
  }

  /* ------------------------------------------------------------------ 2. the view */

  var boards = Array.isArray(config.boards) ? config.boards : [];
  var counts = config.counts || { all: 0, none: 0 };
  var view = { board: "", starred: false, q: "", kind: "", from: "", to: "" };

  var grid = byId("gallery-grid");
  var titleEl = byId("gallery-title");
  var statusEl = byId("gallery-status");
  var qInput = byId("filter-q");
  var starredChip = byId("filter-starred");
  var kindSelect = byId("filter-kind");
  var fromInput = byId("filter-from");
  var toInput = byId("filter-to");
  var clearFilters = byId("filter-clear");

  function readUrl() {
    var params = new URLSearchParams(window.location.search);
    view.board = params.get("board") || "";
    view.starred = params.get("starred") === "true";
    view.q = params.get("q") || "";
    view.kind = params.get("kind") === "result" || params.get("kind") === "upload" ? params.get("kind") : "";
    view.from = /^\d{4}-\d{2}-\d{2}$/.test(params.get("from") || "") ? params.get("from") : "";
    view.to = /^\d{4}-\d{2}-\d{2}$/.test(params.get("to") || "") ? params.get("to") : "";
  }

  function viewQuery() {
    var params = new URLSearchParams();
    if (view.board) params.set("board", view.board);
    if (view.starred) params.set("starred", "true");
    if (view.q) params.set("q", view.q);
    if (view.kind) params.set("kind", view.kind);
    if (view.from) params.set("from", view.from);
    if (view.to) params.set("to", view.to);
    return params.toString();
  }

  function galleryUrl() {
    var query = viewQuery();
    return "/images" + (query ? "?" + query : "");
  }

  function writeUrl() {
    var path = lightboxOpen() ? "/images/" + encodeURIComponent(items[lightboxIndex].id) : "/images";
    var query = viewQuery();
    var url = path + (query ? "?" + query : "");
    if (url !== window.location.pathname + window.location.search) window.history.replaceState(null, "", url);
  }

  /** The API's filters: local days become UTC times, so "to" takes in the whole local day. */
  function apiFilters() {
    var params = new URLSearchParams();
    if (view.board) params.set("board", view.board);
    if (view.starred) params.set("starred", "true");
    if (view.q) params.set("q", view.q);
    if (view.kind) params.set("kind", view.kind);
    function localDay(text, plusDays) {
      var parts = text.split("-").map(Number);
      return new Date(parts[0], parts[1] - 1, parts[2] + plusDays).toISOString();
    }
    if (view.from) params.set("from", localDay(view.from, 0));
    if (view.to) params.set("to", localDay(view.to, 1));
    return params;
  }

  function filtered() { return !!(view.starred || view.q || view.kind || view.from || view.to); }

  function boardById(id) {
    for (var i = 0; i < boards.length; i++) if (boards[i].id === id) return boards[i];
    return null;
  }

  function renderControls() {
    qInput.value = view.q;
    starredChip.setAttribute("aria-pressed", view.starred ? "true" : "false");
    starredChip.classList.toggle("is-active", view.starred);
    kindSelect.value = view.kind;
    fromInput.value = view.from;
    toInput.value = view.to;
    clearFilters.hidden = !filtered();
    var board = view.board && view.board !== "none" ? boardById(view.board) : null;
    titleEl.textContent = view.board === "none" ? "No board" : board ? board.name : "All images";
    document.title = titleEl.textContent + " · Daydream";
    byId("board-tools").hidden = !board;
    if (board) {
      var auto = recall(BOARD_KEY) === board.id;
      var autoButton = byId("board-auto");
      autoButton.setAttribute("aria-pressed", auto ? "true" : "false");
      autoButton.textContent = auto ? "New results go here ✓" : "New results go here";
      autoButton.classList.toggle("is-active", auto);
    }
    // A whole board or the whole account downloads in one archive.
    byId("view-zip").hidden = !(board || (!view.board && !filtered()));
    $all(".board-link", byId("board-list")).forEach(function (link) {
      var current = (link.dataset.view === "all" && !view.board) || link.dataset.view === view.board ||
        link.dataset.boardId === view.board;
      link.classList.toggle("is-current", !!current);
      if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    });
  }

  function setView(change) {
    Object.keys(change).forEach(function (k) { view[k] = change[k]; });
    clearSelection();
    renderControls();
    writeUrl();
    reload();
  }

  var searchTimer = null;
  qInput.addEventListener("input", function () {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(function () { setView({ q: qInput.value.trim() }); }, 300);
  });
  byId("gallery-filters").addEventListener("submit", function (event) {
    event.preventDefault();
    window.clearTimeout(searchTimer);
    setView({ q: qInput.value.trim() });
  });
  starredChip.addEventListener("click", function () { setView({ starred: !view.starred }); });
  kindSelect.addEventListener("change", function () { setView({ kind: kindSelect.value }); });
  fromInput.addEventListener("change", function () { setView({ from: fromInput.value }); });
  toInput.addEventListener("change", function () { setView({ to: toInput.value }); });
  clearFilters.addEventListener("click", function () {
    setView({ starred: false, q: "", kind: "", from: "", to: "" });
  });

  byId("board-list").addEventListener("click", function (event) {
    var link = event.target.closest(".board-link");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    var board = link.dataset.view === "all" ? "" : link.dataset.view === "none" ? "none" : link.dataset.boardId;
    setView({ board: board });
  });

  /* ------------------------------------------------------------------ 3. loading pages */

  var items = [];         // the images shown, in order
  var shown = new Map();  // id -> image
  var total = 0;          // images in this view, as of the snapshot
  var before = null;      // the first page's snapshot
  var nextOffset = 0;     // where the next page starts: images fetched, less those removed since
  var exhausted = false;
  var loading = false;
  var generation = 0;     // a new view makes answers to older requests stale
  var spinner = byId("gallery-spinner");
  var loadMore = byId("load-more");
  var alertEl = byId("gallery-alert");

  function reload() {
    generation++;
    items = [];
    shown = new Map();
    total = 0;
    before = null;
    nextOffset = 0;
    exhausted = false;
    loading = false;
    grid.replaceChildren();
    byId("new-images").hidden = true;
    renderStatus();
    return loadPage();
  }

  function loadPage() {
    if (loading || exhausted) return Promise.resolve();
    loading = true;
    var mine = generation;
    spinner.hidden = false;
    loadMore.hidden = true;
    var params = apiFilters();
    params.set("offset", String(nextOffset));
    params.set("limit", String(PAGE));
    if (before) params.set("before", before);
    return api("GET", "/api/v1/images?" + params.toString()).then(function (res) {
      if (mine !== generation) return;
      loading = false;
      spinner.hidden = true;
      if (!res.ok || !res.data) {
        showAlert(errorText(res, "Could not load your images."));
        loadMore.hidden = false;
        return;
      }
      alertEl.hidden = true;
      if (!before) before = res.data.before;
      total = res.data.total;
      nextOffset += res.data.items.length;
      res.data.items.forEach(function (image) {
        if (shown.has(image.id)) return;
        shown.set(image.id, image);
        items.push(image);
        grid.appendChild(createTile(image));
      });
      exhausted = res.data.items.length < PAGE || nextOffset >= total;
      renderStatus();
      renderSelection();
      if (!exhausted) window.requestAnimationFrame(fillViewport);
    });
  }

  /** Keep loading while the end of the list is on screen (the observer fires on changes only). */
  function fillViewport() {
    if (loading || exhausted) return;
    var rect = byId("gallery-more").getBoundingClientRect();
    if (rect.top < window.innerHeight + 800) loadPage();
    else loadMore.hidden = false;
  }

  if ("IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) loadPage();
    }, { rootMargin: "800px 0px" }).observe(byId("gallery-more"));
  }
  loadMore.addEventListener("click", function () { loadPage(); });

  function showAlert(message) {
    alertEl.textContent = message;
    alertEl.hidden = false;
  }

  function renderStatus() {
    var parts = [];
    if (!loading || total) parts.push(plural(total, "image", "images"));
    if (view.q) parts.push("matching “" + shorten(view.q, 40) + "”");
    statusEl.textContent = parts.join(" ");
    var empty = byId("gallery-empty");
    empty.hidden = loading || items.length > 0;
    if (!empty.hidden) {
      var title = byId("gallery-empty-title");
      var text = byId("gallery-empty-text");
      if (filtered()) {
        title.textContent = "Nothing matches";
        text.textContent = "No image here matches these filters. Clear them to see everything.";
      } else if (view.board === "none") {
        title.textContent = "Every image is in a board";
        text.textContent = "Images that are in no board appear here.";
      } else if (view.board) {
        title.textContent = "This board is empty";
        text.textContent = "Select images in “All images” and move them here, or let new results go here.";
      } else {
        title.textContent = "No images yet";
        text.replaceChildren("Images you make in the ", el("a", { href: "/studio", text: "studio" }), " appear here.");
      }
    }
  }

  /** Images left this view (deleted, moved away, unstarred in "Starred"): drop them and
   * lower the next offset by as many, so the next page starts where it should. */
  function removeFromView(ids) {
    var gone = 0;
    ids.forEach(function (id) {
      if (!shown.has(id)) return;
      shown.delete(id);
      selected.delete(id);
      var tile = tileFor(id);
      if (tile) tile.remove();
      gone++;
    });
    if (!gone) return;
    items = items.filter(function (image) { return shown.has(image.id); });
    nextOffset = Math.max(0, nextOffset - gone);
    total = Math.max(0, total - gone);
    renderStatus();
    renderSelection();
    if (!exhausted) window.requestAnimationFrame(fillViewport);
  }

  /** Whether an image still belongs in the view after a change. */
  function belongs(image) {
    if (view.board === "none" && image.board_id) return false;
    if (view.board && view.board !== "none" && image.board_id !== view.board) return false;
    if (view.starred && !image.starred) return false;
    return true;
  }

  /** Apply changes the server confirmed to shown images. */
  function changed(updated) {
    var leaving = [];
    updated.forEach(function (image) {
      var current = shown.get(image.id);
      if (!current) return;
      Object.assign(current, image);
      if (!belongs(current)) leaving.push(image.id);
      else updateTile(tileFor(image.id), current);
    });
    removeFromView(leaving);
    if (lightboxOpen()) renderLightbox();
  }

  /* ------------------------------------------------------------------ 4. grid + selection */

  var selected = new Set();
  var anchor = null; // the last image clicked into the selection: shift-click extends from it

  function tileFor(id) {
    return grid.querySelector('[data-id="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"]');
  }

  function altOf(image) {
    return image.prompt ? shorten(image.prompt, 140) : image.kind === "upload" ? "An uploaded image" : "An image";
  }

  function createTile(image) {
    var img = el("img", {
      class: "tile__img", src: image.thumbnail_url, alt: altOf(image), loading: "lazy", decoding: "async",
      width: image.width, height: image.height,
    });
    var tile = el("div", { class: "tile", role: "listitem", dataset: { id: image.id } }, [
      el("a", { class: "tile__link", href: "/images/" + encodeURIComponent(image.id), title: image.prompt || "" }, [img]),
      el("button", { type: "button", class: "tile__select", "aria-pressed": "false", "aria-label": "Select this image" }, [svg(CHECK)]),
      el("button", { type: "button", class: "tile__star", "aria-pressed": "false" }, [svg(STAR)]),
      el("span", { class: "tile__badge", hidden: image.kind !== "upload", text: "Upload" }),
    ]);
    updateTile(tile, image);
    return tile;
  }

  function updateTile(tile, image) {
    if (!tile) return;
    var on = selected.has(image.id);
    tile.classList.toggle("is-selected", on);
    var select = $(".tile__select", tile);
    select.setAttribute("aria-pressed", on ? "true" : "false");
    select.setAttribute("aria-label", (on ? "Deselect" : "Select") + " this image");
    var star = $(".tile__star", tile);
    star.setAttribute("aria-pressed", image.starred ? "true" : "false");
    star.setAttribute("aria-label", image.starred ? "Unstar" : "Star");
    star.title = image.starred ? "Starred: click to unstar" : "Star";
    tile.classList.toggle("is-starred", !!image.starred);
  }

  function indexOf(id) {
    for (var i = 0; i < items.length; i++) if (items[i].id === id) return i;
    return -1;
  }

  function toggle(id, on) {
    if (on === undefined) on = !selected.has(id);
    if (on) selected.add(id); else selected.delete(id);
    updateTile(tileFor(id), shown.get(id));
  }

  /** Click: toggle one. Shift-click: select everything from the last click to this one. */
  function selectWith(event, id) {
    var at = indexOf(id);
    if (event.shiftKey && anchor !== null && indexOf(anchor) !== -1) {
      var from = indexOf(anchor);
      var lo = Math.min(from, at);
      var hi = Math.max(from, at);
      for (var i = lo; i <= hi; i++) toggle(items[i].id, true);
    } else {
      toggle(id);
    }
    anchor = id;
    renderSelection();
  }

  grid.addEventListener("click", function (event) {
    var tile = event.target.closest(".tile");
    if (!tile) return;
    var id = tile.dataset.id;
    var image = shown.get(id);
    if (!image) return;
    if (event.target.closest(".tile__star")) {
      event.preventDefault();
      setStar([id], !image.starred);
      return;
    }
    if (event.target.closest(".tile__select")) {
      event.preventDefault();
      selectWith(event, id);
      return;
    }
    if (event.target.closest(".tile__link")) {
      if (event.button !== 0) return;
      if (event.ctrlKey || event.metaKey || event.shiftKey || selected.size > 0) {
        event.preventDefault(); // while selecting, a click selects
        selectWith(event, id);
        return;
      }
      event.preventDefault();
      openLightbox(indexOf(id));
    }
  });

  function clearSelection() {
    var ids = Array.from(selected);
    selected.clear();
    anchor = null;
    ids.forEach(function (id) { updateTile(tileFor(id), shown.get(id) || { starred: false, id: id }); });
    renderSelection();
  }

  var selectAll = byId("select-all");
  selectAll.addEventListener("click", function () {
    var all = items.length > 0 && items.every(function (image) { return selected.has(image.id); });
    if (all) {
      clearSelection();
      return;
    }
    items.forEach(function (image) { toggle(image.id, true); });
    renderSelection();
  });
  byId("selection-clear").addEventListener("click", clearSelection);

  var selectionBar = byId("selection-bar");
  function renderSelection() {
    // Forget what is no longer shown.
    Array.from(selected).forEach(function (id) { if (!shown.has(id)) selected.delete(id); });
    var n = selected.size;
    selectionBar.hidden = n === 0;
    document.body.classList.toggle("has-selection", n > 0);
    byId("selection-count").textContent = String(n);
    byId("selection-noun").textContent = n === 1 ? "image selected" : "images selected";
    var all = items.length > 0 && items.every(function (image) { return selected.has(image.id); });
    selectAll.textContent = all ? "Select none" : "Select all";
    selectAll.hidden = items.length === 0;
  }

  /* ------------------------------------------------------------------ 5. bulk + ZIP */

  var selectionMessage = byId("selection-message");
  function selectionNote(text, isError) {
    selectionMessage.textContent = text || "";
    selectionMessage.classList.toggle("is-error", !!isError);
  }

  function bulk(action, ids, extra) {
    var payload = Object.assign({ ids: ids, action: action }, extra || {});
    return api("POST", "/api/v1/images/bulk", payload);
  }

  function setStar(ids, on) {
    return bulk(on ? "star" : "unstar", ids).then(function (res) {
      if (!res.ok) {
        selectionNote(errorText(res, "Could not change the stars."), true);
        return;
      }
      changed(ids.map(function (id) { return { id: id, starred: on }; }));
      say(plural(res.data.done, "image", "images") + (on ? " starred" : " unstarred"));
    });
  }

  byId("selection-star").addEventListener("click", function () { setStar(Array.from(selected), true); });
  byId("selection-unstar").addEventListener("click", function () { setStar(Array.from(selected), false); });

  function moveTo(ids, boardId) {
    return bulk("move", ids, { board_id: boardId }).then(function (res) {
      if (!res.ok) {
        selectionNote(errorText(res, "Could not move the images."), true);
        return false;
      }
      var board = boardId ? boardById(boardId) : null;
      var note = plural(res.data.done, "image", "images") + " moved to " + (board ? "“" + board.name + "”" : "no board");
      selectionNote(note);
      say(note);
      changed(ids.map(function (id) { return { id: id, board_id: boardId }; }));
      refreshBoards();
      return true;
    });
  }

  var moveSelect = byId("selection-move");
  moveSelect.addEventListener("change", function () {
    var value = moveSelect.value;
    moveSelect.value = "";
    var ids = Array.from(selected);
    if (!value || !ids.length) return;
    if (value === "__new") {
      createBoard().then(function (board) { if (board) moveTo(ids, board.id); });
    } else {
      moveTo(ids, value === "__none" ? null : value);
    }
  });

  byId("selection-delete").addEventListener("click", function () {
    var ids = Array.from(selected);
    if (!ids.length) return;
    var n = ids.length;
    ask({
      title: "Delete " + plural(n, "image", "images") + "?",
      text: (n === 1 ? "This image and its file are" : "These " + n + " images and their files are") +
        " deleted for good. This cannot be undone.",
      ok: "Delete " + plural(n, "image", "images"), danger: true,
    }).then(function (answer) {
      if (!answer.ok) return;
      bulk("delete", ids).then(function (res) {
        if (!res.ok) {
          selectionNote(errorText(res, "Could not delete the images."), true);
          return;
        }
        removeFromView(ids);
        selectionNote("");
        say(plural(res.data.done, "image", "images") + " deleted");
        refreshBoards();
      });
    });
  });

  byId("selection-zip").addEventListener("click", function () {
    var ids = Array.from(selected);
    if (ids.length) downloadZip({ image_ids: ids }, plural(ids.length, "image", "images"));
  });

  byId("view-zip").addEventListener("click", function () {
    var board = view.board && view.board !== "none" ? boardById(view.board) : null;
    if (board) downloadZip({ board_id: board.id }, "“" + board.name + "”");
    else downloadZip({ all: true }, "all your images");
  });

  /* A ZIP is built on the server in the background: start it, follow its progress,
   * then download it. */
  var zipBox = byId("zip-progress");
  var zipText = byId("zip-progress-text");
  var zipBar = byId("zip-progress-bar");
  var zipRunning = false;

  function progressOf(archive) {
    var p = archive.progress;
    if (p && typeof p === "object") {
      var done = p.done !== undefined ? p.done : p.step;
      var all = p.total || archive.image_count;
      if (typeof done === "number" && all) return Math.min(1, done / all);
    }
    if (typeof p === "number") return p > 1 ? p / 100 : p;
    return null;
  }

  function downloadZip(body, what) {
    if (zipRunning) return;
    zipRunning = true;
    zipBox.hidden = false;
    zipBox.classList.remove("is-error");
    zipText.textContent = "Preparing a ZIP of " + what + "…";
    zipBar.removeAttribute("value");
    var finish = function (message, isError) {
      zipRunning = false;
      zipText.textContent = message;
      zipBox.classList.toggle("is-error", !!isError);
      window.setTimeout(function () { if (!zipRunning) zipBox.hidden = true; }, isError ? 8000 : 3000);
    };
    api("POST", "/api/v1/archives", body).then(function (res) {
      if (!res.ok || !res.data || !res.data.id) {
        finish(errorText(res, "Could not start the ZIP."), true);
        return;
      }
      var deadline = Date.now() + 30 * 60 * 1000;
      var poll = function (archive) {
        if (archive.state === "ready" && archive.url) {
          zipBar.value = 1;
          var link = el("a", { href: archive.url, download: "", hidden: true });
          document.body.appendChild(link);
          link.click();
          link.remove();
          finish("Your ZIP of " + what + " is downloading.");
          return;
        }
        if (archive.state === "failed" || archive.state === "expired") {
          finish(archive.error || "The ZIP could not be made. Try again.", true);
          return;
        }
        var fraction = progressOf(archive);
        if (fraction === null) zipBar.removeAttribute("value"); else zipBar.value = fraction;
        zipText.textContent = "Preparing a ZIP of " + what + (archive.image_count ? " (" +
          plural(archive.image_count, "image", "images") + ")" : "") +
          (fraction !== null ? " · " + Math.round(fraction * 100) + "%" : "") + "…";
        if (Date.now() > deadline) {
          finish("The ZIP is taking long; it keeps being made on the server.", true);
          return;
        }
        window.setTimeout(function () {
          api("GET", "/api/v1/archives/" + encodeURIComponent(archive.id)).then(function (next) {
            if (!next.ok || !next.data) finish(errorText(next, "Lost track of the ZIP."), true);
            else poll(next.data);
          });
        }, 600);
      };
      poll(res.data);
    });
  }

  /* ------------------------------------------------------------------ 6. boards */

  var boardOwn = byId("board-own");

  function renderBoards() {
    byId("count-all").textContent = String(counts.all || 0);
    byId("count-none").textContent = String(counts.none || 0);
    boardOwn.replaceChildren.apply(boardOwn, boards.map(function (board) {
      var cover = board.cover_thumbnail_url
        ? el("img", { class: "board-link__cover", src: board.cover_thumbnail_url, alt: "", loading: "lazy" })
        : el("span", { class: "board-link__cover board-link__cover--empty", "aria-hidden": "true" });
      return el("a", {
        class: "board-link", href: "/images?board=" + encodeURIComponent(board.id),
        dataset: { boardId: board.id }, title: board.name,
      }, [cover, el("span", { class: "board-link__name", text: board.name }),
          el("span", { class: "board-link__count", text: String(board.image_count) })]);
    }));
    // The "move to" menus.
    var options = [el("option", { value: "", text: "Move to…" })]
      .concat(boards.map(function (b) { return el("option", { value: b.id, text: b.name }); }))
      .concat([el("option", { value: "__none", text: "No board" }), el("option", { value: "__new", text: "New board…" })]);
    moveSelect.replaceChildren.apply(moveSelect, options);
    renderDetailBoards();
    renderControls();
  }

  function refreshBoards() {
    return api("GET", "/api/v1/boards?limit=200").then(function (res) {
      if (!res.ok || !res.data) return;
      boards = res.data.items;
      counts = res.data.counts || counts;
      if (view.board && view.board !== "none" && !boardById(view.board)) {
        setView({ board: "" }); // the board is gone
      }
      renderBoards();
    });
  }

  function createBoard() {
    var made = null;
    return ask({
      title: "New board", ok: "Create", input: { label: "Name", value: "" },
      submit: function (name) {
        return api("POST", "/api/v1/boards", { name: name }).then(function (res) {
          if (!res.ok) return errorText(res, "Could not create the board.");
          made = res.data;
          boards.push(made);
          boards.sort(function (a, b) { return a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1; });
          renderBoards();
          return null;
        });
      },
    }).then(function (answer) { return answer.ok ? made : null; });
  }

  byId("board-new").addEventListener("click", function () {
    createBoard().then(function (board) { if (board) say("Board “" + board.name + "” created"); });
  });

  byId("board-rename").addEventListener("click", function () {
    var board = boardById(view.board);
    if (!board) return;
    ask({
      title: "Rename the board", ok: "Rename", input: { label: "Name", value: board.name },
      submit: function (name) {
        return api("PATCH", "/api/v1/boards/" + encodeURIComponent(board.id), { name: name }).then(function (res) {
          if (!res.ok) return errorText(res, "Could not rename the board.");
          Object.assign(board, res.data);
          renderBoards();
          return null;
        });
      },
    });
  });

  byId("board-delete").addEventListener("click", function () {
    var board = boardById(view.board);
    if (!board) return;
    var n = board.image_count;
    ask({
      title: "Delete the board “" + board.name + "”?",
      text: n ? "It holds " + plural(n, "image", "images") + "." : "It holds no images.",
      choices: n > 0, choicesLabel: "Delete its " + plural(n, "image", "images") + " too (for good)",
      ok: "Delete board", danger: true,
    }).then(function (answer) {
      if (!answer.ok) return;
      var withImages = answer.choice === "delete";
      api("DELETE", "/api/v1/boards/" + encodeURIComponent(board.id) + (withImages ? "?delete_images=true" : ""))
        .then(function (res) {
          if (!res.ok) {
            showAlert(errorText(res, "Could not delete the board."));
            return;
          }
          if (recall(BOARD_KEY) === board.id) remember(BOARD_KEY, null);
          boards = boards.filter(function (b) { return b.id !== board.id; });
          say("Board deleted" + (withImages ? " with its images" : ""));
          setView({ board: "" });
          refreshBoards();
        });
    });
  });

  byId("board-auto").addEventListener("click", function () {
    var board = boardById(view.board);
    if (!board) return;
    var on = recall(BOARD_KEY) !== board.id;
    remember(BOARD_KEY, on ? board.id : null);
    renderControls();
    say(on ? "New results from the studio go into “" + board.name + "”" : "New results go into no board");
  });

  /* ------------------------------------------------------------------ 7. the lightbox */

  var lightbox = byId("lightbox");
  var lightboxImage = byId("lightbox-image");
  var lightboxLoading = byId("lightbox-loading");
  var lightboxIndex = -1;
  var returnFocus = null;
  var detailSeq = 0;

  function lightboxOpen() { return !lightbox.hidden && lightboxIndex >= 0 && lightboxIndex < items.length; }

  function openLightbox(index) {
    if (index < 0 || index >= items.length) return;
    if (lightbox.hidden) returnFocus = document.activeElement;
    lightboxIndex = index;
    lightbox.hidden = false;
    document.body.classList.add("lightbox-open");
    renderLightbox();
    writeUrl();
    byId("lightbox-close").focus();
    // Near the end of what is loaded: fetch the next page, so → keeps going.
    if (index >= items.length - 3) loadPage();
  }

  function closeLightbox() {
    if (lightbox.hidden) return;
    var id = lightboxOpen() ? items[lightboxIndex].id : null;
    lightbox.hidden = true;
    lightboxIndex = -1;
    document.body.classList.remove("lightbox-open");
    lightboxImage.removeAttribute("src");
    writeUrl();
    var tile = id ? tileFor(id) : null;
    var target = tile ? $(".tile__link", tile) : returnFocus;
    if (target && target.focus) target.focus();
    if (tile && tile.scrollIntoView) tile.scrollIntoView({ block: "nearest" });
  }

  function step(delta) {
    if (!lightboxOpen()) return;
    var next = lightboxIndex + delta;
    if (next < 0) return;
    if (next >= items.length) {
      if (exhausted) return;
      loadPage().then(function () { if (next < items.length) openLightbox(next); });
      return;
    }
    openLightbox(next);
  }

  byId("lightbox-prev").addEventListener("click", function () { step(-1); });
  byId("lightbox-next").addEventListener("click", function () { step(1); });
  byId("lightbox-close").addEventListener("click", closeLightbox);
  lightbox.addEventListener("click", function (event) {
    if (event.target === lightbox || event.target.classList.contains("lightbox__stage") ||
        event.target.classList.contains("lightbox__figure")) closeLightbox();
  });

  document.addEventListener("keydown", function (event) {
    if (dialog && dialog.open) return;
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test((event.target && event.target.tagName) || "");
    if (!lightbox.hidden) {
      if (event.key === "Escape") { event.preventDefault(); closeLightbox(); }
      else if (typing) return;
      else if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
      else if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
      return;
    }
    if (event.key === "Escape" && selected.size && !typing) clearSelection();
  });

  // Keep focus inside the lightbox while it is open.
  lightbox.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") return;
    var focusable = $all("button:not([hidden]), a[href], input, select", lightbox).filter(function (n) {
      return !n.disabled && n.offsetParent !== null;
    });
    if (!focusable.length) return;
    var first = focusable[0];
    var last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  });

  var PARAM_LABELS = [
    ["size", "Size"], ["steps", "Steps"], ["guidance", "Guidance"], ["scheduler", "Scheduler"],
    ["model", "Model"], ["strength", "Strength"], ["created", "Made"], ["kind", "Kind"],
  ];

  function renderLightbox() {
    if (!lightboxOpen()) return;
    var image = items[lightboxIndex];
    byId("lightbox-position").textContent = "Image " + (lightboxIndex + 1) + " of " + total;
    byId("lightbox-prev").disabled = lightboxIndex === 0;
    byId("lightbox-next").disabled = lightboxIndex >= items.length - 1 && exhausted;
    // The thumbnail at once, the full PNG when it has loaded.
    if (lightboxImage.dataset.id !== image.id) {
      lightboxImage.dataset.id = image.id;
      lightboxImage.src = image.thumbnail_url;
      lightboxImage.alt = altOf(image);
      lightboxImage.classList.add("is-preview");
      lightboxLoading.hidden = false;
      var full = new Image();
      full.onload = function () {
        if (lightboxImage.dataset.id !== image.id) return;
        lightboxImage.src = image.url;
        lightboxImage.classList.remove("is-preview");
        lightboxLoading.hidden = true;
      };
      full.onerror = function () { if (lightboxImage.dataset.id === image.id) lightboxLoading.hidden = true; };
      full.src = image.url;
      loadDetails(image);
    }
    var star = byId("detail-star");
    star.setAttribute("aria-pressed", image.starred ? "true" : "false");
    star.textContent = image.starred ? "★ Starred" : "☆ Star";
    byId("detail-public").checked = !!image.public;
    byId("detail-download").href = image.url;
    byId("detail-download").setAttribute("download", "daydream-" + image.id + ".png");
    byId("detail-reuse").href = "/studio?reuse=" + encodeURIComponent(image.id);
    byId("detail-reuse").hidden = image.kind === "upload";
    byId("detail-variant").href = "/studio?variant=" + encodeURIComponent(image.id);
    renderDetailBoards();
  }

  function renderDetailBoards() {
    var select = byId("detail-board");
    var image = lightboxOpen() ? items[lightboxIndex] : null;
    var options = [el("option", { value: "", text: "No board" })]
      .concat(boards.map(function (b) { return el("option", { value: b.id, text: b.name }); }));
    select.replaceChildren.apply(select, options);
    select.value = image && image.board_id ? image.board_id : "";
    var board = image && image.board_id ? boardById(image.board_id) : null;
    var cover = byId("detail-cover");
    cover.hidden = !board;
    if (board) {
      var isCover = board.cover_image_id === image.id;
      cover.disabled = isCover;
      cover.textContent = isCover ? "The board’s cover" : "Make it the board’s cover";
    }
  }

  function detailNote(text, isError) {
    var note = byId("detail-message");
    note.textContent = text || "";
    note.classList.toggle("is-error", !!isError);
  }

  function loadDetails(image) {
    var seq = ++detailSeq;
    detailNote("");
    byId("lightbox-title").textContent = image.kind === "upload" ? "Uploaded image" : "Image";
    byId("detail-prompt").textContent = image.prompt || (image.kind === "upload" ? "An image you uploaded." : "");
    byId("detail-negative").hidden = true;
    byId("detail-seed-row").hidden = true;
    renderParams(image, {});
    api("GET", image.metadata_url).then(function (res) {
      if (seq !== detailSeq) return;
      if (!res.ok || !res.data) {
        detailNote(errorText(res, "Could not read this image's parameters."), true);
        return;
      }
      var meta = res.data;
      if (meta.prompt) byId("detail-prompt").textContent = meta.prompt;
      var negative = byId("detail-negative");
      negative.hidden = !meta.negative_prompt;
      negative.textContent = meta.negative_prompt ? "Avoid: " + meta.negative_prompt : "";
      var seed = meta.seed !== undefined && meta.seed !== null ? meta.seed : image.seed;
      byId("detail-seed-row").hidden = seed === null || seed === undefined;
      byId("detail-seed").textContent = seed === null || seed === undefined ? "" : String(seed);
      renderParams(image, meta);
    });
  }

  function renderParams(image, meta) {
    var values = {
      size: (meta.width || image.width) + " × " + (meta.height || image.height),
      steps: meta.steps, guidance: meta.guidance, scheduler: meta.scheduler, model: meta.model,
      strength: meta.init_image ? meta.strength : null,
      created: formatDate(image.created_at),
      kind: image.kind === "upload" ? "Upload" + (meta.original_format ? " (" + meta.original_format + ")" : "") : null,
    };
    var list = byId("detail-params");
    var nodes = [];
    PARAM_LABELS.forEach(function (pair) {
      var value = values[pair[0]];
      if (value === null || value === undefined || value === "") return;
      nodes.push(el("div", { class: "detail-params__row" }, [
        el("dt", { text: pair[1] }), el("dd", { text: String(value) })]));
    });
    list.replaceChildren.apply(list, nodes);
  }

  function patchImage(image, change, done) {
    return api("PATCH", "/api/v1/images/" + encodeURIComponent(image.id), change).then(function (res) {
      if (!res.ok) {
        detailNote(errorText(res, "Could not save that."), true);
        renderLightbox();
        return;
      }
      detailNote(done || "Saved.");
      var staying = lightboxIndex;
      changed([res.data]);
      // The image may have left the view (unstarred in "Starred", moved out of the board).
      if (!shown.has(image.id)) {
        if (!items.length) closeLightbox();
        else openLightbox(Math.min(staying, items.length - 1));
      }
      refreshBoards();
    });
  }

  byId("detail-star").addEventListener("click", function () {
    if (!lightboxOpen()) return;
    var image = items[lightboxIndex];
    patchImage(image, { starred: !image.starred }, image.starred ? "Unstarred." : "Starred.");
  });
  byId("detail-public").addEventListener("change", function () {
    if (!lightboxOpen()) return;
    var on = byId("detail-public").checked;
    patchImage(items[lightboxIndex], { public: on }, on ? "Public now." : "Private now.");
  });
  byId("detail-board").addEventListener("change", function () {
    if (!lightboxOpen()) return;
    var value = byId("detail-board").value || null;
    var board = value ? boardById(value) : null;
    patchImage(items[lightboxIndex], { board_id: value }, board ? "Moved to “" + board.name + "”." : "In no board now.");
  });
  byId("detail-cover").addEventListener("click", function () {
    if (!lightboxOpen()) return;
    var image = items[lightboxIndex];
    api("PATCH", "/api/v1/boards/" + encodeURIComponent(image.board_id), { cover_image_id: image.id }).then(function (res) {
      if (!res.ok) {
        detailNote(errorText(res, "Could not set the cover."), true);
        return;
      }
      detailNote("This is the board’s cover now.");
      refreshBoards();
    });
  });

  byId("detail-copy-seed").addEventListener("click", function () {
    var seed = byId("detail-seed").textContent;
    var done = function () { detailNote("Seed " + seed + " copied."); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(seed).then(done, function () { fallbackCopy(seed) && done(); });
    } else if (fallbackCopy(seed)) {
      done();
    }
  });

  function fallbackCopy(text) {
    var area = el("textarea", { class: "visually-hidden", readonly: true });
    area.value = text;
    lightbox.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
    area.remove();
    if (!ok) detailNote("Copy it by hand: " + text);
    return ok;
  }

  byId("detail-delete").addEventListener("click", function () {
    if (!lightboxOpen()) return;
    var image = items[lightboxIndex];
    var index = lightboxIndex;
    ask({
      title: "Delete this image?", text: "The image and its file are deleted for good. This cannot be undone.",
      ok: "Delete image", danger: true,
    }).then(function (answer) {
      if (!answer.ok) return;
      api("DELETE", "/api/v1/images/" + encodeURIComponent(image.id)).then(function (res) {
        if (!res.ok) {
          detailNote(errorText(res, "Could not delete the image."), true);
          return;
        }
        removeFromView([image.id]);
        say("Image deleted");
        refreshBoards();
        if (!items.length) closeLightbox();
        else openLightbox(Math.min(index, items.length - 1));
      });
    });
  });

  /* ------------------------------------------------------------------ 8. live + start-up */

  // New images while the page is open: offer them instead of shifting what is shown.
  // (Polled, not Socket.IO: an open socket counts as an open studio page, which would
  // keep "cancel my tasks when I leave the studio" from acting.)
  var newImages = byId("new-images");
  newImages.addEventListener("click", function () {
    newImages.hidden = true;
    window.scrollTo({ top: 0 });
    reload();
    refreshBoards();
  });

  function checkForNew() {
    if (document.hidden || !before || loading) return;
    var mine = generation;
    var params = apiFilters();
    params.set("limit", "1");
    api("GET", "/api/v1/images?" + params.toString()).then(function (res) {
      if (mine !== generation || !res.ok || !res.data) return;
      var fresh = res.data.total - total; // removals lower both counts alike
      newImages.hidden = fresh <= 0;
      if (fresh > 0) newImages.textContent = plural(fresh, "new image", "new images") + " · show";
      if (fresh > 0) refreshBoards();
    });
  }
  window.setInterval(checkForNew, 15000);
  document.addEventListener("visibilitychange", checkForNew);

  readUrl();
  renderBoards();
  renderSelection();
  var opening = config.open_image;
  reload().then(function () {
    if (!opening) return;
    var index = indexOf(opening.id);
    if (index === -1) {
      // Not on the first page of this view: show it on its own after what is loaded.
      shown.set(opening.id, opening);
      items.push(opening);
      grid.appendChild(createTile(opening));
      index = items.length - 1;
    }
    openLightbox(index);
  });

  // For the console and tests.
  window.daydreamGallery = {
    items: function () { return items; },
    selected: function () { return Array.from(selected); },
    reload: reload,
  };
})();
