/* Daydream gallery (/images): boards, filters, an infinitely scrolling grid of
 * thumbnails, multi-select with bulk actions, and the lightbox with the image's details.
 *
 * Layout of this file:
 *   1. the confirmation and name dialog
 *   2. the view (board + filters) and the address bar
 *   3. loading pages: offset/limit with the first page's `before` snapshot, so images
 *      made meanwhile never shift later pages; removing shown images lowers the offset
 *   4. the grid and the selection (click, shift-click, ctrl-click, select all)
 *   5. bulk actions and ZIP downloads (lib/archive.js: live by the `archive` event)
 *   6. boards: the sidebar, create, rename, delete, "new results go here"
 *   7. the lightbox (lib/lightbox.js) and its details panel
 *   8. new images and start-up
 *
 * Contract: /api/v1 (docs/API.md). No inline scripts: the server's data comes in #gallery-config.
 */
import { $, $all, announce, byId, copyText, el, svg } from "../lib/dom.js";
import { formatDate, plural, shorten } from "../lib/format.js";
import { recall, remember } from "../lib/storage.js";
import { api, errorText } from "../lib/api.js";
import { createLightbox } from "../lib/lightbox.js";
import { archiveWidget } from "../lib/archive.js";

let config = {};
try {
  config = JSON.parse((byId("gallery-config") || {}).textContent || "{}") || {};
} catch (err) {
  config = {};
}
const PAGE = 60;
const BOARD_KEY = "board"; // localStorage "daydream.board": the studio reads it too
const STAR = "M12 3.8l2.5 5.2 5.7.8-4.1 4 1 5.6L12 16.7l-5.1 2.7 1-5.6-4.1-4 5.7-.8z";
const CHECK = "M5 12.5l4.5 4.5L19 7.5";

function say(text) { announce(text, "gallery-sr"); }

/* ------------------------------------------------------------------ 1. the dialog */

/* A dialog for confirmations and names. options: {title, text, ok, danger, choices,
 * choicesLabel, input: {label, value}, submit(value, choice) -> Promise<error message or null>}.
 * Resolves to {ok, value, choice}. */
const dialog = byId("confirm-dialog");
let dialogState = null;

function ask(options) {
  return new Promise((resolve) => {
    byId("confirm-title").textContent = options.title || "Are you sure?";
    const text = byId("confirm-text");
    text.textContent = options.text || "";
    text.hidden = !options.text;
    byId("confirm-choices").hidden = !options.choices;
    if (options.choices) {
      $all('input[name="board-images"]', dialog).forEach((r) => { r.checked = r.value === "keep"; });
      byId("confirm-delete-images").textContent = options.choicesLabel || "Delete its images too";
    }
    const field = byId("confirm-field");
    const input = byId("confirm-input");
    field.hidden = !options.input;
    byId("confirm-error").hidden = true;
    input.removeAttribute("aria-invalid");
    if (options.input) {
      byId("confirm-label").textContent = options.input.label || "Name";
      input.value = options.input.value || "";
    }
    const ok = byId("confirm-ok");
    ok.textContent = options.ok || "OK";
    ok.className = "btn btn--small " + (options.danger ? "btn--danger" : "btn--primary");
    ok.disabled = false;
    dialogState = { options, resolve };
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    window.setTimeout(() => {
      (options.input ? input : ok).focus();
      if (options.input) input.select();
    }, 30);
  });
}

function finishDialog(result) {
  const state = dialogState;
  dialogState = null;
  if (dialog.open) dialog.close();
  if (state) state.resolve(result);
}

byId("confirm-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const state = dialogState;
  if (!state) return;
  const value = byId("confirm-input").value;
  const choiceInput = $('input[name="board-images"]:checked', dialog);
  const choice = choiceInput ? choiceInput.value : null;
  if (!state.options.submit) {
    finishDialog({ ok: true, value, choice });
    return;
  }
  const ok = byId("confirm-ok");
  ok.disabled = true;
  state.options.submit(value, choice).then((message) => {
    ok.disabled = false;
    if (message) {
      const error = byId("confirm-error");
      error.textContent = message;
      error.hidden = false;
      byId("confirm-input").setAttribute("aria-invalid", "true");
      byId("confirm-input").focus();
      return;
    }
    finishDialog({ ok: true, value, choice });
  });
});
dialog.addEventListener("cancel", () => finishDialog({ ok: false }));
byId("confirm-cancel").addEventListener("click", () => finishDialog({ ok: false }));

/* ------------------------------------------------------------------ 2. the view */

let boards = Array.isArray(config.boards) ? config.boards : [];
let counts = config.counts || { all: 0, none: 0 };
const view = { board: "", starred: false, q: "", kind: "", from: "", to: "" };

const grid = byId("gallery-grid");
const titleEl = byId("gallery-title");
const statusEl = byId("gallery-status");
const qInput = byId("filter-q");
const starredChip = byId("filter-starred");
const kindSelect = byId("filter-kind");
const fromInput = byId("filter-from");
const toInput = byId("filter-to");
const clearFilters = byId("filter-clear");
const DAY = /^\d{4}-\d{2}-\d{2}$/;

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  const kind = params.get("kind");
  view.board = params.get("board") || "";
  view.starred = params.get("starred") === "true";
  view.q = params.get("q") || "";
  view.kind = kind === "result" || kind === "upload" ? kind : "";
  view.from = DAY.test(params.get("from") || "") ? params.get("from") : "";
  view.to = DAY.test(params.get("to") || "") ? params.get("to") : "";
}

function viewQuery() {
  const params = new URLSearchParams();
  if (view.board) params.set("board", view.board);
  if (view.starred) params.set("starred", "true");
  if (view.q) params.set("q", view.q);
  if (view.kind) params.set("kind", view.kind);
  if (view.from) params.set("from", view.from);
  if (view.to) params.set("to", view.to);
  return params.toString();
}

function writeUrl() {
  const image = currentImage();
  const path = image ? "/images/" + encodeURIComponent(image.id) : "/images";
  const query = viewQuery();
  const url = path + (query ? "?" + query : "");
  if (url !== window.location.pathname + window.location.search) window.history.replaceState(null, "", url);
}

/** The API's filters: local days become UTC times, so "to" takes in the whole local day. */
function apiFilters() {
  const params = new URLSearchParams();
  if (view.board) params.set("board", view.board);
  if (view.starred) params.set("starred", "true");
  if (view.q) params.set("q", view.q);
  if (view.kind) params.set("kind", view.kind);
  const localDay = (text, plusDays) => {
    const [y, m, d] = text.split("-").map(Number);
    return new Date(y, m - 1, d + plusDays).toISOString();
  };
  if (view.from) params.set("from", localDay(view.from, 0));
  if (view.to) params.set("to", localDay(view.to, 1));
  return params;
}

function filtered() { return !!(view.starred || view.q || view.kind || view.from || view.to); }

function boardById(id) { return boards.find((b) => b.id === id) || null; }

function renderControls() {
  qInput.value = view.q;
  starredChip.setAttribute("aria-pressed", view.starred ? "true" : "false");
  starredChip.classList.toggle("is-active", view.starred);
  kindSelect.value = view.kind;
  fromInput.value = view.from;
  toInput.value = view.to;
  clearFilters.hidden = !filtered();
  const board = view.board && view.board !== "none" ? boardById(view.board) : null;
  titleEl.textContent = view.board === "none" ? "No board" : board ? board.name : "All images";
  document.title = titleEl.textContent + " · Daydream";
  byId("board-tools").hidden = !board;
  if (board) {
    const auto = recall(BOARD_KEY) === board.id;
    const autoButton = byId("board-auto");
    autoButton.setAttribute("aria-pressed", auto ? "true" : "false");
    autoButton.textContent = auto ? "New results go here ✓" : "New results go here";
    autoButton.classList.toggle("is-active", auto);
  }
  // A whole board or the whole account downloads in one archive.
  byId("view-zip").hidden = !(board || (!view.board && !filtered()));
  $all(".board-link", byId("board-list")).forEach((link) => {
    const current = (link.dataset.view === "all" && !view.board) || link.dataset.view === view.board ||
      link.dataset.boardId === view.board;
    link.classList.toggle("is-current", !!current);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
}

function setView(change) {
  Object.assign(view, change);
  clearSelection();
  renderControls();
  writeUrl();
  reload();
}

let searchTimer = null;
qInput.addEventListener("input", () => {
  window.clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => setView({ q: qInput.value.trim() }), 300);
});
byId("gallery-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  window.clearTimeout(searchTimer);
  setView({ q: qInput.value.trim() });
});
starredChip.addEventListener("click", () => setView({ starred: !view.starred }));
kindSelect.addEventListener("change", () => setView({ kind: kindSelect.value }));
fromInput.addEventListener("change", () => setView({ from: fromInput.value }));
toInput.addEventListener("change", () => setView({ to: toInput.value }));
clearFilters.addEventListener("click", () => setView({ starred: false, q: "", kind: "", from: "", to: "" }));

byId("board-list").addEventListener("click", (event) => {
  const link = event.target.closest(".board-link");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  const board = link.dataset.view === "all" ? "" : link.dataset.view === "none" ? "none" : link.dataset.boardId;
  setView({ board });
});

/* ------------------------------------------------------------------ 3. loading pages */

let items = [];         // the images shown, in order
let shown = new Map();  // id -> image
let total = 0;          // images in this view, as of the snapshot
let before = null;      // the first page's snapshot
let nextOffset = 0;     // where the next page starts: images fetched, less those removed since
let exhausted = false;
let loading = false;
let generation = 0;     // a new view makes answers to older requests stale
const spinner = byId("gallery-spinner");
const loadMore = byId("load-more");
const alertEl = byId("gallery-alert");

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
  const mine = generation;
  spinner.hidden = false;
  loadMore.hidden = true;
  const params = apiFilters();
  params.set("offset", String(nextOffset));
  params.set("limit", String(PAGE));
  if (before) params.set("before", before);
  return api("GET", "/api/v1/images?" + params.toString()).then((res) => {
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
    res.data.items.forEach((image) => {
      if (shown.has(image.id)) return;
      shown.set(image.id, image);
      items.push(image);
      grid.appendChild(createTile(image));
    });
    exhausted = res.data.items.length < PAGE || nextOffset >= total;
    renderStatus();
    renderSelection();
    if (lightbox.isOpen()) lightbox.refresh();
    if (!exhausted) window.requestAnimationFrame(fillViewport);
  });
}

/** Keep loading while the end of the list is on screen (the observer fires on changes only). */
function fillViewport() {
  if (loading || exhausted) return;
  const rect = byId("gallery-more").getBoundingClientRect();
  if (rect.top < window.innerHeight + 800) loadPage();
  else loadMore.hidden = false;
}

if ("IntersectionObserver" in window) {
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage();
  }, { rootMargin: "800px 0px" }).observe(byId("gallery-more"));
}
loadMore.addEventListener("click", () => loadPage());

function showAlert(message) {
  alertEl.textContent = message;
  alertEl.hidden = false;
}

function renderStatus() {
  const parts = [];
  if (!loading || total) parts.push(plural(total, "image", "images"));
  if (view.q) parts.push("matching “" + shorten(view.q, 40) + "”");
  statusEl.textContent = parts.join(" ");
  const empty = byId("gallery-empty");
  empty.hidden = loading || items.length > 0;
  if (empty.hidden) return;
  const title = byId("gallery-empty-title");
  const text = byId("gallery-empty-text");
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

/** Images left this view (deleted, moved away, unstarred in "Starred"): drop them and
 * lower the next offset by as many, so the next page starts where it should. */
function removeFromView(ids) {
  let gone = 0;
  ids.forEach((id) => {
    if (!shown.has(id)) return;
    shown.delete(id);
    selected.delete(id);
    const tile = tileFor(id);
    if (tile) tile.remove();
    gone++;
  });
  if (!gone) return;
  items = items.filter((image) => shown.has(image.id));
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
  const leaving = [];
  updated.forEach((image) => {
    const current = shown.get(image.id);
    if (!current) return;
    Object.assign(current, image);
    if (!belongs(current)) leaving.push(image.id);
    else updateTile(tileFor(image.id), current);
  });
  removeFromView(leaving);
  if (lightbox.isOpen()) {
    lightbox.refresh();
    renderDetails();
  }
}

/* ------------------------------------------------------------------ 4. grid + selection */

const selected = new Set();
let anchor = null; // the last image clicked into the selection: shift-click extends from it

function tileFor(id) {
  return grid.querySelector('[data-id="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"]');
}

function altOf(image) {
  return image.prompt ? shorten(image.prompt, 140) : image.kind === "upload" ? "An uploaded image" : "An image";
}

// What the lightbox shows for an image held for review (its files are staff's only).
const HELD_PICTURE = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512" fill="#1d2030"/>' +
  '<text x="256" y="256" fill="#a3a9bd" font-family="sans-serif" font-size="30" text-anchor="middle" ' +
  'dominant-baseline="middle">Held for review</text></svg>');

function createTile(image) {
  const img = el("img", {
    class: "tile__img", src: image.thumbnail_url, alt: altOf(image), loading: "lazy", decoding: "async",
    width: image.width, height: image.height,
  });
  // An image the image check held: no picture (its files are staff's) until staff release it.
  const held = image.review === "held";
  const tile = el("div", { class: "tile" + (held ? " tile--held" : ""), role: "listitem", dataset: { id: image.id } }, [
    held ? el("div", { class: "gallery-held", role: "img", "aria-label": "Held for review: " + altOf(image),
                       title: "The image check held this image; staff will release or remove it." },
              [el("span", { class: "task-held__label", text: "Held for review" })])
      : el("a", { class: "tile__link", href: "/images/" + encodeURIComponent(image.id), title: image.prompt || "" }, [img]),
    el("button", { type: "button", class: "tile__select", "aria-pressed": "false", "aria-label": "Select this image" }, [svg(CHECK)]),
    el("button", { type: "button", class: "tile__star", "aria-pressed": "false" }, [svg(STAR)]),
    el("span", { class: "tile__badge", hidden: image.kind !== "upload", text: "Upload" }),
  ]);
  updateTile(tile, image);
  return tile;
}

function updateTile(tile, image) {
  if (!tile) return;
  const on = selected.has(image.id);
  tile.classList.toggle("is-selected", on);
  const select = $(".tile__select", tile);
  select.setAttribute("aria-pressed", on ? "true" : "false");
  select.setAttribute("aria-label", (on ? "Deselect" : "Select") + " this image");
  const star = $(".tile__star", tile);
  star.setAttribute("aria-pressed", image.starred ? "true" : "false");
  star.setAttribute("aria-label", image.starred ? "Unstar" : "Star");
  star.title = image.starred ? "Starred: click to unstar" : "Star";
  tile.classList.toggle("is-starred", !!image.starred);
}

function indexOf(id) { return items.findIndex((image) => image.id === id); }

function toggle(id, on) {
  if (on === undefined) on = !selected.has(id);
  if (on) selected.add(id);
  else selected.delete(id);
  updateTile(tileFor(id), shown.get(id));
}

/** Click: toggle one. Shift-click: select everything from the last click to this one. */
function selectWith(event, id) {
  const at = indexOf(id);
  if (event.shiftKey && anchor !== null && indexOf(anchor) !== -1) {
    const from = indexOf(anchor);
    for (let i = Math.min(from, at); i <= Math.max(from, at); i++) toggle(items[i].id, true);
  } else {
    toggle(id);
  }
  anchor = id;
  renderSelection();
}

grid.addEventListener("click", (event) => {
  const tile = event.target.closest(".tile");
  if (!tile) return;
  const id = tile.dataset.id;
  const image = shown.get(id);
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
    event.preventDefault();
    if (event.ctrlKey || event.metaKey || event.shiftKey || selected.size > 0) {
      selectWith(event, id); // while selecting, a click selects
      return;
    }
    lightbox.open(indexOf(id));
  }
});

function clearSelection() {
  const ids = Array.from(selected);
  selected.clear();
  anchor = null;
  ids.forEach((id) => updateTile(tileFor(id), shown.get(id) || { starred: false, id }));
  renderSelection();
}

const selectAll = byId("select-all");
selectAll.addEventListener("click", () => {
  const all = items.length > 0 && items.every((image) => selected.has(image.id));
  if (all) {
    clearSelection();
    return;
  }
  items.forEach((image) => toggle(image.id, true));
  renderSelection();
});
byId("selection-clear").addEventListener("click", clearSelection);

const selectionBar = byId("selection-bar");
function renderSelection() {
  // Forget what is no longer shown.
  Array.from(selected).forEach((id) => { if (!shown.has(id)) selected.delete(id); });
  const n = selected.size;
  selectionBar.hidden = n === 0;
  document.body.classList.toggle("has-selection", n > 0);
  byId("selection-count").textContent = String(n);
  byId("selection-noun").textContent = n === 1 ? "image selected" : "images selected";
  const all = items.length > 0 && items.every((image) => selected.has(image.id));
  selectAll.textContent = all ? "Select none" : "Select all";
  selectAll.hidden = items.length === 0;
}

/* ------------------------------------------------------------------ 5. bulk + ZIP */

const selectionMessage = byId("selection-message");
function selectionNote(text, isError) {
  selectionMessage.textContent = text || "";
  selectionMessage.classList.toggle("is-error", !!isError);
}

function bulk(action, ids, extra) {
  return api("POST", "/api/v1/images/bulk", Object.assign({ ids, action }, extra || {}));
}

function setStar(ids, on) {
  return bulk(on ? "star" : "unstar", ids).then((res) => {
    if (!res.ok) {
      selectionNote(errorText(res, "Could not change the stars."), true);
      return;
    }
    changed(ids.map((id) => ({ id, starred: on })));
    say(plural(res.data.done, "image", "images") + (on ? " starred" : " unstarred"));
  });
}

byId("selection-star").addEventListener("click", () => setStar(Array.from(selected), true));
byId("selection-unstar").addEventListener("click", () => setStar(Array.from(selected), false));

function moveTo(ids, boardId) {
  return bulk("move", ids, { board_id: boardId }).then((res) => {
    if (!res.ok) {
      selectionNote(errorText(res, "Could not move the images."), true);
      return false;
    }
    const board = boardId ? boardById(boardId) : null;
    const note = plural(res.data.done, "image", "images") + " moved to " + (board ? "“" + board.name + "”" : "no board");
    selectionNote(note);
    say(note);
    changed(ids.map((id) => ({ id, board_id: boardId })));
    refreshBoards();
    return true;
  });
}

const moveSelect = byId("selection-move");
moveSelect.addEventListener("change", () => {
  const value = moveSelect.value;
  moveSelect.value = "";
  const ids = Array.from(selected);
  if (!value || !ids.length) return;
  if (value === "__new") createBoard().then((board) => { if (board) moveTo(ids, board.id); });
  else moveTo(ids, value === "__none" ? null : value);
});

byId("selection-delete").addEventListener("click", () => {
  const ids = Array.from(selected);
  if (!ids.length) return;
  const n = ids.length;
  ask({
    title: "Delete " + plural(n, "image", "images") + "?",
    text: (n === 1 ? "This image and its file are" : "These " + n + " images and their files are") +
      " deleted for good. This cannot be undone.",
    ok: "Delete " + plural(n, "image", "images"), danger: true,
  }).then((answer) => {
    if (!answer.ok) return;
    bulk("delete", ids).then((res) => {
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

/* A ZIP is built on the server in the background (lib/archive.js follows it by the
 * `archive` event and starts the download once it is ready). */
const zip = archiveWidget(byId("zip-progress"), { download: "auto", hideAfterMs: 3000, hideErrorAfterMs: 8000 });

function downloadZip(body, what) {
  if (!zip.busy()) zip.start(body, what);
}

byId("selection-zip").addEventListener("click", () => {
  const ids = Array.from(selected);
  if (ids.length) downloadZip({ image_ids: ids }, plural(ids.length, "image", "images")); // said once: archiveText
});

byId("view-zip").addEventListener("click", () => {
  const board = view.board && view.board !== "none" ? boardById(view.board) : null;
  if (board) downloadZip({ board_id: board.id }, "“" + board.name + "”");
  else downloadZip({ all: true }, "all your images");
});

/* ------------------------------------------------------------------ 6. boards */

const boardOwn = byId("board-own");

function renderBoards() {
  byId("count-all").textContent = String(counts.all || 0);
  byId("count-none").textContent = String(counts.none || 0);
  boardOwn.replaceChildren(...boards.map((board) => {
    const cover = board.cover_thumbnail_url
      ? el("img", { class: "board-link__cover", src: board.cover_thumbnail_url, alt: "", loading: "lazy" })
      : el("span", { class: "board-link__cover board-link__cover--empty", "aria-hidden": "true" });
    return el("a", {
      class: "board-link", href: "/images?board=" + encodeURIComponent(board.id),
      dataset: { boardId: board.id }, title: board.name,
    }, [cover, el("span", { class: "board-link__name", text: board.name }),
      el("span", { class: "board-link__count", text: String(board.image_count) })]);
  }));
  // The "move to" menu.
  moveSelect.replaceChildren(
    el("option", { value: "", text: "Move to…" }),
    ...boards.map((b) => el("option", { value: b.id, text: b.name })),
    el("option", { value: "__none", text: "No board" }),
    el("option", { value: "__new", text: "New board…" }),
  );
  renderDetailBoards();
  renderControls();
}

function refreshBoards() {
  return api("GET", "/api/v1/boards?limit=200").then((res) => {
    if (!res.ok || !res.data) return;
    boards = res.data.items;
    counts = res.data.counts || counts;
    if (view.board && view.board !== "none" && !boardById(view.board)) setView({ board: "" }); // the board is gone
    renderBoards();
  });
}

function createBoard() {
  let made = null;
  return ask({
    title: "New board", ok: "Create", input: { label: "Name", value: "" },
    submit: (name) => api("POST", "/api/v1/boards", { name }).then((res) => {
      if (!res.ok) return errorText(res, "Could not create the board.");
      made = res.data;
      boards.push(made);
      boards.sort((a, b) => (a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1));
      renderBoards();
      return null;
    }),
  }).then((answer) => (answer.ok ? made : null));
}

byId("board-new").addEventListener("click", () => {
  createBoard().then((board) => { if (board) say("Board “" + board.name + "” created"); });
});

byId("board-rename").addEventListener("click", () => {
  const board = boardById(view.board);
  if (!board) return;
  ask({
    title: "Rename the board", ok: "Rename", input: { label: "Name", value: board.name },
    submit: (name) => api("PATCH", "/api/v1/boards/" + encodeURIComponent(board.id), { name }).then((res) => {
      if (!res.ok) return errorText(res, "Could not rename the board.");
      Object.assign(board, res.data);
      renderBoards();
      return null;
    }),
  });
});

byId("board-delete").addEventListener("click", () => {
  const board = boardById(view.board);
  if (!board) return;
  const n = board.image_count;
  ask({
    title: "Delete the board “" + board.name + "”?",
    text: n ? "It holds " + plural(n, "image", "images") + "." : "It holds no images.",
    choices: n > 0, choicesLabel: "Delete its " + plural(n, "image", "images") + " too (for good)",
    ok: "Delete board", danger: true,
  }).then((answer) => {
    if (!answer.ok) return;
    const withImages = answer.choice === "delete";
    api("DELETE", "/api/v1/boards/" + encodeURIComponent(board.id) + (withImages ? "?delete_images=true" : ""))
      .then((res) => {
        if (!res.ok) {
          showAlert(errorText(res, "Could not delete the board."));
          return;
        }
        if (recall(BOARD_KEY) === board.id) remember(BOARD_KEY, null);
        boards = boards.filter((b) => b.id !== board.id);
        say("Board deleted" + (withImages ? " with its images" : ""));
        setView({ board: "" });
        refreshBoards();
      });
  });
});

byId("board-auto").addEventListener("click", () => {
  const board = boardById(view.board);
  if (!board) return;
  const on = recall(BOARD_KEY) !== board.id;
  remember(BOARD_KEY, on ? board.id : null);
  renderControls();
  say(on ? "New results from the studio go into “" + board.name + "”" : "New results go into no board");
});

/* ------------------------------------------------------------------ 7. the lightbox */

let detailsFor = null; // the id of the image whose parameters the panel shows
let detailSeq = 0;

const lightbox = createLightbox(byId("lightbox"), {
  count: () => items.length,
  total: () => total,
  item: (index) => {
    const image = items[index];
    if (image.review === "held") return { src: HELD_PICTURE, alt: "Held for review: " + altOf(image) };
    return { src: image.url, preview: image.thumbnail_url, alt: altOf(image) };
  },
  hasMore: () => !exhausted,
  more: () => loadPage(),
  onShow: () => {
    renderDetails();
    writeUrl();
  },
  onClose: () => {
    const id = detailsFor;
    detailsFor = null;
    writeUrl();
    const tile = id ? tileFor(id) : null;
    if (!tile) return null;
    if (tile.scrollIntoView) tile.scrollIntoView({ block: "nearest" });
    return $(".tile__link", tile);
  },
});

function currentImage() {
  const index = lightbox.index();
  return index >= 0 ? items[index] : null;
}

// Escape, when nothing else takes it, clears the selection.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || dialog.open || lightbox.isOpen() || !selected.size) return;
  if (/^(INPUT|TEXTAREA|SELECT)$/.test((event.target && event.target.tagName) || "")) return;
  clearSelection();
});

/* The studio's names of models and schedulers ("Euler", "Demo (tiny, CPU)"), for the
 * details: the PNG's parameters hold their ids. Asked for once, when first needed; an id
 * that is not listed (a model disabled since) is shown as it is. */
let names = null;
function loadNames() {
  if (!names) {
    names = Promise.all([api("GET", "/api/v1/models"), api("GET", "/api/v1/schedulers")]).then(([m, s]) => {
      const table = (res) => new Map(((res.ok && res.data && res.data.items) || []).map((i) => [i.id, i.name]));
      return { model: table(m), scheduler: table(s) };
    });
  }
  return names;
}
const nameOf = (table, id) => (id && table && table.get(id)) || id;

const PARAM_LABELS = [
  ["size", "Size"], ["steps", "Steps"], ["guidance", "Guidance"], ["scheduler", "Scheduler"],
  ["model", "Model"], ["strength", "Strength"], ["created", "Made"], ["kind", "Kind"],
];

/** The details panel of the image shown. */
function renderDetails() {
  const image = currentImage();
  if (!image) return;
  if (detailsFor !== image.id) {
    detailsFor = image.id;
    loadDetails(image);
  }
  const star = byId("detail-star");
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
  const select = byId("detail-board");
  const image = currentImage();
  select.replaceChildren(el("option", { value: "", text: "No board" }),
    ...boards.map((b) => el("option", { value: b.id, text: b.name })));
  select.value = image && image.board_id ? image.board_id : "";
  const board = image && image.board_id ? boardById(image.board_id) : null;
  const cover = byId("detail-cover");
  cover.hidden = !board;
  if (board) {
    const isCover = board.cover_image_id === image.id;
    cover.disabled = isCover;
    cover.textContent = isCover ? "The board’s cover" : "Make it the board’s cover";
  }
}

function detailNote(text, isError) {
  const note = byId("detail-message");
  note.textContent = text || "";
  note.classList.toggle("is-error", !!isError);
}

function loadDetails(image) {
  const seq = ++detailSeq;
  detailNote("");
  byId("lightbox-title").textContent = image.kind === "upload" ? "Uploaded image" : "Image";
  byId("detail-prompt").textContent = image.prompt || (image.kind === "upload" ? "An image you uploaded." : "");
  byId("detail-negative").hidden = true;
  byId("detail-seed-row").hidden = true;
  renderParams(image, {});
  if (image.review === "held") {  // its files, metadata too, are staff's until released
    detailNote("Held for review: the image check held this image; staff will release or remove it.");
    return;
  }
  Promise.all([api("GET", image.metadata_url), loadNames()]).then(([res, known]) => {
    if (seq !== detailSeq) return;
    if (!res.ok || !res.data) {
      detailNote(errorText(res, "Could not read this image's parameters."), true);
      return;
    }
    const meta = res.data;
    if (meta.prompt) byId("detail-prompt").textContent = meta.prompt;
    const negative = byId("detail-negative");
    negative.hidden = !meta.negative_prompt;
    negative.textContent = meta.negative_prompt ? "Avoid: " + meta.negative_prompt : "";
    const seed = meta.seed !== undefined && meta.seed !== null ? meta.seed : image.seed;
    const noSeed = seed === null || seed === undefined;
    byId("detail-seed-row").hidden = noSeed;
    byId("detail-seed").textContent = noSeed ? "" : String(seed);
    renderParams(image, meta, known);
  });
}

function renderParams(image, meta, known) {
  const values = {
    size: (meta.width || image.width) + " × " + (meta.height || image.height),
    steps: meta.steps, guidance: meta.guidance,
    scheduler: nameOf(known && known.scheduler, meta.scheduler), model: nameOf(known && known.model, meta.model),
    strength: meta.init_image ? meta.strength : null,
    created: formatDate(image.created_at),
    kind: image.kind === "upload" ? "Upload" + (meta.original_format ? " (" + meta.original_format + ")" : "") : null,
  };
  const rows = PARAM_LABELS.filter(([key]) => values[key] !== null && values[key] !== undefined && values[key] !== "")
    .map(([key, label]) => el("div", { class: "detail-params__row" }, [
      el("dt", { text: label }), el("dd", { text: String(values[key]) })]));
  byId("detail-params").replaceChildren(...rows);
}

/** After the image shown left the view (or was deleted): show the one now in its place. */
function showNear(index) {
  if (!items.length) lightbox.close();
  else lightbox.open(Math.min(index, items.length - 1));
}

function patchImage(image, change, done) {
  return api("PATCH", "/api/v1/images/" + encodeURIComponent(image.id), change).then((res) => {
    if (!res.ok) {
      detailNote(errorText(res, "Could not save that."), true);
      renderDetails();
      return;
    }
    detailNote(done || "Saved.");
    const staying = lightbox.index();
    changed([res.data]);
    // The image may have left the view (unstarred in "Starred", moved out of the board).
    if (!shown.has(image.id)) showNear(staying);
    refreshBoards();
  });
}

byId("detail-star").addEventListener("click", () => {
  const image = currentImage();
  if (image) patchImage(image, { starred: !image.starred }, image.starred ? "Unstarred." : "Starred.");
});
byId("detail-public").addEventListener("change", () => {
  const image = currentImage();
  if (!image) return;
  const on = byId("detail-public").checked;
  patchImage(image, { public: on }, on ? "Public now." : "Private now.");
});
byId("detail-board").addEventListener("change", () => {
  const image = currentImage();
  if (!image) return;
  const value = byId("detail-board").value || null;
  const board = value ? boardById(value) : null;
  patchImage(image, { board_id: value }, board ? "Moved to “" + board.name + "”." : "In no board now.");
});
byId("detail-cover").addEventListener("click", () => {
  const image = currentImage();
  if (!image) return;
  api("PATCH", "/api/v1/boards/" + encodeURIComponent(image.board_id), { cover_image_id: image.id }).then((res) => {
    if (!res.ok) {
      detailNote(errorText(res, "Could not set the cover."), true);
      return;
    }
    detailNote("This is the board’s cover now.");
    refreshBoards();
  });
});

byId("detail-copy-seed").addEventListener("click", () => {
  const seed = byId("detail-seed").textContent;
  copyText(seed).then((ok) => detailNote(ok ? "Seed " + seed + " copied." : "Copy it by hand: " + seed));
});

byId("detail-delete").addEventListener("click", () => {
  const image = currentImage();
  if (!image) return;
  const index = lightbox.index();
  ask({
    title: "Delete this image?", text: "The image and its file are deleted for good. This cannot be undone.",
    ok: "Delete image", danger: true,
  }).then((answer) => {
    if (!answer.ok) return;
    api("DELETE", "/api/v1/images/" + encodeURIComponent(image.id)).then((res) => {
      if (!res.ok) {
        detailNote(errorText(res, "Could not delete the image."), true);
        return;
      }
      removeFromView([image.id]);
      say("Image deleted");
      refreshBoards();
      showNear(index);
    });
  });
});

/* ------------------------------------------------------------------ 8. new images + start-up */

// New images while the page is open: offer them instead of shifting what is shown.
// (Polled, not Socket.IO: an open socket counts as an open studio page, which would
// keep "cancel my tasks when I leave the studio" from acting. lib/archive.js holds the
// socket only while a ZIP is being made.)
const newImages = byId("new-images");
newImages.addEventListener("click", () => {
  newImages.hidden = true;
  window.scrollTo({ top: 0 });
  reload();
  refreshBoards();
});

function checkForNew() {
  if (document.hidden || !before || loading) return;
  const mine = generation;
  const params = apiFilters();
  params.set("limit", "1");
  api("GET", "/api/v1/images?" + params.toString()).then((res) => {
    if (mine !== generation || !res.ok || !res.data) return;
    const fresh = res.data.total - total; // removals lower both counts alike
    newImages.hidden = fresh <= 0;
    if (fresh > 0) {
      newImages.textContent = plural(fresh, "new image", "new images") + " · show";
      refreshBoards();
    }
  });
}
window.setInterval(checkForNew, 15000);
document.addEventListener("visibilitychange", checkForNew);

readUrl();
renderBoards();
renderSelection();
const opening = config.open_image;
reload().then(() => {
  if (!opening) return;
  let index = indexOf(opening.id);
  if (index === -1) {
    // Not on the first page of this view: show it on its own after what is loaded.
    shown.set(opening.id, opening);
    items.push(opening);
    grid.appendChild(createTile(opening));
    index = items.length - 1;
  }
  lightbox.open(index);
});

// For the console and tests.
window.daydreamGallery = {
  items: () => items,
  selected: () => Array.from(selected),
  reload,
};
