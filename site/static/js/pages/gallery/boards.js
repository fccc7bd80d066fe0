/* Daydream gallery — boards: the sidebar with their covers and counts, and creating,
 * renaming and deleting one (with its images or not), and "new results go here" (the
 * studio reads it). Other parts that list the boards (the "move to" menu, the details
 * panel) follow them with onBoards(). */
import { api, errorText } from "../../lib/api.js";
import { ask } from "../../lib/confirm.js";
import { byId, el } from "../../lib/dom.js";
import { plural } from "../../lib/format.js";
import { recall, remember } from "../../lib/storage.js";
import { BOARD_KEY, say } from "./config.js";
import { renderControls, setView } from "./filters.js";
import { showAlert } from "./loading.js";
import { boardById, catalog, view } from "./state.js";

const boardOwn = byId("board-own");
const listeners = [];

/** Call fn() whenever the boards are shown again. */
export function onBoards(fn) { listeners.push(fn); }

export function renderBoards() {
  byId("count-all").textContent = String(catalog.counts.all || 0);
  byId("count-none").textContent = String(catalog.counts.none || 0);
  boardOwn.replaceChildren(...catalog.boards.map((board) => {
    const cover = board.cover_thumbnail_url
      ? el("img", { class: "board-link__cover", src: board.cover_thumbnail_url, alt: "", loading: "lazy" })
      : el("span", { class: "board-link__cover board-link__cover--empty", "aria-hidden": "true" });
    return el("a", {
      class: "board-link", href: "/images?board=" + encodeURIComponent(board.id),
      dataset: { boardId: board.id }, title: board.name,
    }, [cover, el("span", { class: "board-link__name", text: board.name }),
      el("span", { class: "board-link__count", text: String(board.image_count) })]);
  }));
  listeners.forEach((fn) => fn());
  renderControls();
}

export function refreshBoards() {
  return api("GET", "/api/v1/boards?limit=200").then((res) => {
    if (!res.ok || !res.data) return;
    catalog.boards = res.data.items;
    catalog.counts = res.data.counts || catalog.counts;
    if (view.board && view.board !== "none" && !boardById(view.board)) setView({ board: "" }); // the board is gone
    renderBoards();
  });
}

/** Ask for a name and make the board: resolves to it, or null when canceled. */
export function createBoard() {
  let made = null;
  return ask({
    title: "New board", ok: "Create", input: { label: "Name", value: "", maxLength: 80 },
    submit: (name) => api("POST", "/api/v1/boards", { name }).then((res) => {
      if (!res.ok) return errorText(res, "Could not create the board.");
      made = res.data;
      catalog.boards.push(made);
      catalog.boards.sort((a, b) => (a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1));
      renderBoards();
      return null;
    }),
  }).then((answer) => (answer.ok ? made : null));
}

function renameBoard() {
  const board = boardById(view.board);
  if (!board) return;
  ask({
    title: "Rename the board", ok: "Rename", input: { label: "Name", value: board.name, maxLength: 80 },
    submit: (name) => api("PATCH", "/api/v1/boards/" + encodeURIComponent(board.id), { name }).then((res) => {
      if (!res.ok) return errorText(res, "Could not rename the board.");
      Object.assign(board, res.data);
      renderBoards();
      return null;
    }),
  });
}

function deleteBoard() {
  const board = boardById(view.board);
  if (!board) return;
  const n = board.image_count;
  ask({
    title: "Delete the board “" + board.name + "”?",
    text: n ? "It holds " + plural(n, "image", "images") + "." : "It holds no images.",
    choices: n > 0 ? {
      legend: "What happens to the board’s images",
      items: [
        { value: "keep", label: "Keep its images (they move to “No board”)", checked: true },
        { value: "delete", label: "Delete its " + plural(n, "image", "images") + " too (for good)" },
      ],
    } : null,
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
        catalog.boards = catalog.boards.filter((b) => b.id !== board.id);
        say("Board deleted" + (withImages ? " with its images" : ""));
        setView({ board: "" });
        refreshBoards();
      });
  });
}

export function initBoards() {
  byId("board-new").addEventListener("click", () => {
    createBoard().then((board) => { if (board) say("Board “" + board.name + "” created"); });
  });
  byId("board-rename").addEventListener("click", renameBoard);
  byId("board-delete").addEventListener("click", deleteBoard);
  byId("board-auto").addEventListener("click", () => {
    const board = boardById(view.board);
    if (!board) return;
    const on = recall(BOARD_KEY) !== board.id;
    remember(BOARD_KEY, on ? board.id : null);
    renderControls();
    say(on ? "New results from the studio go into “" + board.name + "”" : "New results go into no board");
  });
}
