/* Daydream gallery — the selection: click a tile's check to select it, shift-click to
 * select from the last click to this one, ctrl-click (or any click while selecting) on a
 * picture; select all or none; Escape clears it. A click on a picture otherwise opens it,
 * and a click on a star stars it (the callbacks of initSelection). */
import { byId } from "../../lib/dom.js";
import { indexOf, list, selected } from "./state.js";
import { grid, tileFor, updateTile } from "./tiles.js";

let anchor = null; // the last image clicked into the selection: shift-click extends from it
const selectAll = byId("select-all");
const selectionBar = byId("selection-bar");

function toggle(id, on) {
  if (on === undefined) on = !selected.has(id);
  if (on) selected.add(id);
  else selected.delete(id);
  updateTile(tileFor(id), list.shown.get(id));
}

/** Click: toggle one. Shift-click: select everything from the last click to this one. */
function selectWith(event, id) {
  const at = indexOf(id);
  if (event.shiftKey && anchor !== null && indexOf(anchor) !== -1) {
    const from = indexOf(anchor);
    for (let i = Math.min(from, at); i <= Math.max(from, at); i++) toggle(list.items[i].id, true);
  } else {
    toggle(id);
  }
  anchor = id;
  renderSelection();
}

export function clearSelection() {
  const ids = Array.from(selected);
  selected.clear();
  anchor = null;
  ids.forEach((id) => updateTile(tileFor(id), list.shown.get(id) || { starred: false, id }));
  renderSelection();
}

export function renderSelection() {
  // Forget what is no longer shown.
  Array.from(selected).forEach((id) => { if (!list.shown.has(id)) selected.delete(id); });
  const n = selected.size;
  selectionBar.hidden = n === 0;
  document.body.classList.toggle("has-selection", n > 0);
  byId("selection-count").textContent = String(n);
  byId("selection-noun").textContent = n === 1 ? "image selected" : "images selected";
  const all = list.items.length > 0 && list.items.every((image) => selected.has(image.id));
  selectAll.textContent = all ? "Select none" : "Select all";
  selectAll.hidden = list.items.length === 0;
}

/** Wire the grid's clicks: onStar(id, on) stars or unstars one, onOpen(id) opens one. */
export function initSelection({ onStar, onOpen }) {
  grid.addEventListener("click", (event) => {
    const tile = event.target.closest(".tile");
    if (!tile) return;
    const id = tile.dataset.id;
    const image = list.shown.get(id);
    if (!image) return;
    if (event.target.closest(".tile__star")) {
      event.preventDefault();
      onStar(id, !image.starred);
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
      onOpen(id);
    }
  });

  selectAll.addEventListener("click", () => {
    const all = list.items.length > 0 && list.items.every((image) => selected.has(image.id));
    if (all) {
      clearSelection();
      return;
    }
    list.items.forEach((image) => toggle(image.id, true));
    renderSelection();
  });
  byId("selection-clear").addEventListener("click", clearSelection);

  // Escape, when nothing else takes it (no dialog is open: the lightbox, a question), clears the selection.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !selected.size || document.querySelector("dialog[open]")) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test((event.target && event.target.tagName) || "")) return;
    clearSelection();
  });
}
