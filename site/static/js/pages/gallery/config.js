/* Daydream gallery — the page's configuration, from the JSON block #gallery-config (the
 * boards and their counts, the image to open; no inline scripts under the CSP), and the
 * constants the parts share. */
import { announce, byId } from "../../lib/dom.js";

function readConfig() {
  try {
    return JSON.parse((byId("gallery-config") || {}).textContent || "{}") || {};
  } catch (err) {
    return {};
  }
}

export const config = readConfig();
export const PAGE = 60;
export const BOARD_KEY = "board"; // localStorage "daydream.board": the studio reads it too

/** Say something to screen readers. */
export function say(text) { announce(text, "gallery-sr"); }
