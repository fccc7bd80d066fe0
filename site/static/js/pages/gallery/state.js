/* Daydream gallery — the state the parts share: the view (board and filters), the
 * boards, the images shown and the selection. */
import { config } from "./config.js";

/** What is shown: a board ("" all, "none" no board, else its id) and the filters. */
export const view = { board: "", starred: false, q: "", kind: "", from: "", to: "" };

/** The user's boards, and the counts of "All images" and "No board". */
export const catalog = {
  boards: Array.isArray(config.boards) ? config.boards : [],
  counts: config.counts || { all: 0, none: 0 },
};

/** The images of the view loaded so far (loading.js pages them in). */
export const list = {
  items: [],         // the images shown, in order
  shown: new Map(),  // id -> image
  total: 0,          // images in this view, as of the snapshot
  before: null,      // the first page's snapshot
  nextOffset: 0,     // where the next page starts: images fetched, less those removed since
  exhausted: false,
  loading: false,
  generation: 0,     // a new view makes answers to older requests stale
};

/** The ids of the images selected. */
export const selected = new Set();

export function boardById(id) { return catalog.boards.find((b) => b.id === id) || null; }

export function indexOf(id) { return list.items.findIndex((image) => image.id === id); }
