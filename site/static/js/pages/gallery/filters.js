/* Daydream gallery — choosing the view: a board in the sidebar, and the filters (search,
 * starred, kind, from/to). A change clears the selection, writes the address and loads
 * the view again. */
import { $all, byId, el } from "../../lib/dom.js";
import { recall } from "../../lib/storage.js";
import { filtered, writeUrl } from "./address.js";
import { BOARD_KEY } from "./config.js";
import { reload } from "./loading.js";
import { clearSelection } from "./selection.js";
import { boardById, view } from "./state.js";
import { currentImage } from "./viewer.js";

const titleEl = byId("gallery-title");
const qInput = byId("filter-q");
const starredChip = byId("filter-starred");
const kindSelect = byId("filter-kind");
const fromInput = byId("filter-from");
const toInput = byId("filter-to");
const clearFilters = byId("filter-clear");

/** The controls, the title and the sidebar as the view is. */
export function renderControls() {
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

export function setView(change) {
  Object.assign(view, change);
  clearSelection();
  renderControls();
  writeUrl(currentImage());
  reload();
}

export function initFilters() {
  // Inpainting's masks are images of their own, listed only when asked for.
  if (!kindSelect.querySelector('option[value="mask"]')) kindSelect.append(el("option", { value: "mask", text: "Masks" }));
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
}
