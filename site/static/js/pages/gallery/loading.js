/* Daydream gallery — loading the view's images a page at a time: offset/limit with the
 * first page's `before` snapshot, so images made meanwhile never shift later pages, and
 * more as the end of the grid comes near. Images that leave the view (deleted, moved
 * away, unstarred in "Starred") lower the offset by as many. The status line and the
 * empty state say what is shown. */
import { api, errorText } from "../../lib/api.js";
import { byId, el } from "../../lib/dom.js";
import { plural, shorten } from "../../lib/format.js";
import { apiFilters, filtered } from "./address.js";
import { PAGE } from "./config.js";
import { list, selected, view } from "./state.js";
import { renderSelection } from "./selection.js";
import { createTile, grid, tileFor, updateTile } from "./tiles.js";

const spinner = byId("gallery-spinner");
const loadMore = byId("load-more");
const alertEl = byId("gallery-alert");
const statusEl = byId("gallery-status");
let hooks = { afterLoad() {}, afterChange() {} };

/** Start the view again from its first page. */
export function reload() {
  list.generation++;
  list.items = [];
  list.shown = new Map();
  list.total = 0;
  list.before = null;
  list.nextOffset = 0;
  list.exhausted = false;
  list.loading = false;
  grid.replaceChildren();
  byId("new-images").hidden = true;
  renderStatus();
  return loadPage();
}

export function loadPage() {
  if (list.loading || list.exhausted) return Promise.resolve();
  list.loading = true;
  const mine = list.generation;
  spinner.hidden = false;
  loadMore.hidden = true;
  const params = apiFilters();
  params.set("offset", String(list.nextOffset));
  params.set("limit", String(PAGE));
  if (list.before) params.set("before", list.before);
  return api("GET", "/api/v1/images?" + params.toString()).then((res) => {
    if (mine !== list.generation) return;
    list.loading = false;
    spinner.hidden = true;
    if (!res.ok || !res.data) {
      showAlert(errorText(res, "Could not load your images."));
      loadMore.hidden = false;
      return;
    }
    alertEl.hidden = true;
    if (!list.before) list.before = res.data.before;
    list.total = res.data.total;
    list.nextOffset += res.data.items.length;
    res.data.items.forEach((image) => {
      if (list.shown.has(image.id)) return;
      list.shown.set(image.id, image);
      list.items.push(image);
      grid.appendChild(createTile(image));
    });
    list.exhausted = res.data.items.length < PAGE || list.nextOffset >= list.total;
    renderStatus();
    renderSelection();
    hooks.afterLoad();
    if (!list.exhausted) window.requestAnimationFrame(fillViewport);
  });
}

/** Keep loading while the end of the list is on screen (the observer fires on changes only). */
function fillViewport() {
  if (list.loading || list.exhausted) return;
  const rect = byId("gallery-more").getBoundingClientRect();
  if (rect.top < window.innerHeight + 800) loadPage();
  else loadMore.hidden = false;
}

export function showAlert(message) {
  alertEl.textContent = message;
  alertEl.hidden = false;
}

function renderStatus() {
  const parts = [];
  if (!list.loading || list.total) parts.push(plural(list.total, "image", "images"));
  if (view.q) parts.push("matching “" + shorten(view.q, 40) + "”");
  statusEl.textContent = parts.join(" ");
  const empty = byId("gallery-empty");
  empty.hidden = list.loading || list.items.length > 0;
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
export function removeFromView(ids) {
  let gone = 0;
  ids.forEach((id) => {
    if (!list.shown.has(id)) return;
    list.shown.delete(id);
    selected.delete(id);
    const tile = tileFor(id);
    if (tile) tile.remove();
    gone++;
  });
  if (!gone) return;
  list.items = list.items.filter((image) => list.shown.has(image.id));
  list.nextOffset = Math.max(0, list.nextOffset - gone);
  list.total = Math.max(0, list.total - gone);
  renderStatus();
  renderSelection();
  if (!list.exhausted) window.requestAnimationFrame(fillViewport);
}

/** Whether an image still belongs in the view after a change. */
function belongs(image) {
  if (view.board === "none" && image.board_id) return false;
  if (view.board && view.board !== "none" && image.board_id !== view.board) return false;
  if (view.starred && !image.starred) return false;
  return true;
}

/** Apply changes the server confirmed to shown images. */
export function changed(updated) {
  const leaving = [];
  updated.forEach((image) => {
    const current = list.shown.get(image.id);
    if (!current) return;
    Object.assign(current, image);
    if (!belongs(current)) leaving.push(image.id);
    else updateTile(tileFor(image.id), current);
  });
  removeFromView(leaving);
  hooks.afterChange();
}

/** afterLoad(): a page came (the lightbox counts again); afterChange(): shown images changed. */
export function initLoading(callbacks) {
  hooks = Object.assign(hooks, callbacks);
  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadPage();
    }, { rootMargin: "800px 0px" }).observe(byId("gallery-more"));
  }
  loadMore.addEventListener("click", () => loadPage());
}
