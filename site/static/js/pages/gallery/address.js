/* Daydream gallery — the address bar: /images[/{id}]?board=&starred=&q=&kind=&from=&to=
 * is read into the view at the start and written back as the view and the lightbox
 * change; and the view as the API's filters. */
import { view } from "./state.js";

const DAY = /^\d{4}-\d{2}-\d{2}$/;

export function readUrl() {
  const params = new URLSearchParams(window.location.search);
  const kind = params.get("kind");
  view.board = params.get("board") || "";
  view.starred = params.get("starred") === "true";
  view.q = params.get("q") || "";
  view.kind = kind === "result" || kind === "upload" || kind === "mask" ? kind : "";
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

/** The address of the view, and of `image` when the lightbox shows one. */
export function writeUrl(image) {
  const path = image ? "/images/" + encodeURIComponent(image.id) : "/images";
  const query = viewQuery();
  const url = path + (query ? "?" + query : "");
  if (url !== window.location.pathname + window.location.search) window.history.replaceState(null, "", url);
}

/** The API's filters: local days become UTC times, so "to" takes in the whole local day. */
export function apiFilters() {
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

export function filtered() { return !!(view.starred || view.q || view.kind || view.from || view.to); }
