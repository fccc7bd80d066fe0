/* Daydream gallery — what the selection bar does to the images selected: star, unstar,
 * move to a board (or a new one), delete, and download as a ZIP; and the ZIP of the whole
 * view. A ZIP is built on the server in the background (lib/archive.js follows it by the
 * `archive` event and starts the download once it is ready). */
import { api, errorText } from "../../lib/api.js";
import { archiveWidget } from "../../lib/archive.js";
import { ask } from "../../lib/confirm.js";
import { byId, el } from "../../lib/dom.js";
import { plural } from "../../lib/format.js";
import { createBoard, onBoards, refreshBoards } from "./boards.js";
import { say } from "./config.js";
import { changed, removeFromView } from "./loading.js";
import { boardById, catalog, selected, view } from "./state.js";

const selectionMessage = byId("selection-message");
const moveSelect = byId("selection-move");
let zip = null;

function selectionNote(text, isError) {
  selectionMessage.textContent = text || "";
  selectionMessage.classList.toggle("is-error", !!isError);
}

function bulk(action, ids, extra) {
  return api("POST", "/api/v1/images/bulk", Object.assign({ ids, action }, extra || {}));
}

export function setStar(ids, on) {
  return bulk(on ? "star" : "unstar", ids).then((res) => {
    if (!res.ok) {
      selectionNote(errorText(res, "Could not change the stars."), true);
      return;
    }
    changed(ids.map((id) => ({ id, starred: on })));
    say(plural(res.data.done, "image", "images") + (on ? " starred" : " unstarred"));
  });
}

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

/** The "move to" menu: the boards, no board, a new one. */
function renderMoveMenu() {
  moveSelect.replaceChildren(
    el("option", { value: "", text: "Move to…" }),
    ...catalog.boards.map((b) => el("option", { value: b.id, text: b.name })),
    el("option", { value: "__none", text: "No board" }),
    el("option", { value: "__new", text: "New board…" }),
  );
}

function deleteSelected() {
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
}

function downloadZip(body, what) {
  if (!zip.busy()) zip.start(body, what);
}

export function initBulk() {
  onBoards(renderMoveMenu);
  byId("selection-star").addEventListener("click", () => setStar(Array.from(selected), true));
  byId("selection-unstar").addEventListener("click", () => setStar(Array.from(selected), false));
  moveSelect.addEventListener("change", () => {
    const value = moveSelect.value;
    moveSelect.value = "";
    const ids = Array.from(selected);
    if (!value || !ids.length) return;
    if (value === "__new") createBoard().then((board) => { if (board) moveTo(ids, board.id); });
    else moveTo(ids, value === "__none" ? null : value);
  });
  byId("selection-delete").addEventListener("click", deleteSelected);

  zip = archiveWidget(byId("zip-progress"), { download: "auto", hideAfterMs: 3000, hideErrorAfterMs: 8000 });
  byId("selection-zip").addEventListener("click", () => {
    const ids = Array.from(selected);
    if (ids.length) downloadZip({ image_ids: ids }, plural(ids.length, "image", "images")); // said once: archiveText
  });
  byId("view-zip").addEventListener("click", () => {
    const board = view.board && view.board !== "none" ? boardById(view.board) : null;
    if (board) downloadZip({ board_id: board.id }, "“" + board.name + "”");
    else downloadZip({ all: true }, "all your images");
  });
}
