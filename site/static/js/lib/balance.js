/* Daydream — the token balance in the header (#balance: "N tokens", data-tokens="N"). */
import { byId } from "./dom.js";
import { plural } from "./format.js";

const listeners = [];

/** The balance shown, or null when the page has none. */
export function currentTokens() {
  const node = byId("balance");
  const n = node ? parseInt(node.dataset.tokens, 10) : NaN;
  return isNaN(n) ? null : n;
}

/** Show a new balance (a short bump when it changed) and tell the listeners. */
export function setBalance(tokens) {
  const node = byId("balance");
  if (typeof tokens !== "number" || !node) return;
  const previous = currentTokens();
  node.dataset.tokens = String(tokens);
  node.textContent = plural(tokens, "token", "tokens");
  if (previous !== null && previous !== tokens && node.parentElement) {
    const pill = node.parentElement;
    pill.classList.remove("is-bumped");
    void pill.offsetWidth; // restart the animation
    pill.classList.add("is-bumped");
  }
  listeners.forEach((fn) => fn(tokens));
}

/** Call fn(tokens) whenever setBalance shows a new balance. */
export function onBalance(fn) { listeners.push(fn); }
