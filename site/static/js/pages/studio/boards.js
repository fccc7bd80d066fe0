/* Daydream studio — the board new results go into (#board_id), remembered in this browser. */
import { api } from "../../lib/api.js";
import { byId, el } from "../../lib/dom.js";
import { recall, remember } from "../../lib/storage.js";

export function initBoards() {
  const select = byId("board_id");
  if (!select) return;
  select.addEventListener("change", () => remember("board", select.value));
  // Until the list arrives, the remembered board is already the one a submit uses.
  const remembered = recall("board");
  if (remembered) {
    select.appendChild(el("option", { value: remembered, text: "Your chosen board" }));
    select.value = remembered;
  }
}

/** Fill #board_id with the user's boards (GET /api/v1/boards). */
export function loadBoards() {
  const select = byId("board_id");
  if (!select) return;
  api("GET", "/api/v1/boards?limit=200").then((res) => {
    if (!res.ok || !res.data || !Array.isArray(res.data.items)) return;
    const chosen = recall("board") || "";
    select.replaceChildren(
      el("option", { value: "", text: "No board" }),
      ...res.data.items.map((b) => el("option", { value: b.id, text: b.name })),
    );
    const exists = res.data.items.some((b) => b.id === chosen);
    select.value = exists ? chosen : "";
    if (chosen && !exists) remember("board", ""); // the board was deleted
  });
}
