/* Daydream — localStorage that never breaks a page (private mode, storage turned off).
 * Keys are kept under "daydream.". */

const PREFIX = "daydream.";

/** Store a string; null or undefined removes the key. */
export function remember(key, value) {
  try {
    if (value === null || value === undefined) window.localStorage.removeItem(PREFIX + key);
    else window.localStorage.setItem(PREFIX + key, String(value));
  } catch (err) { /* storage may be off */ }
}

/** The stored string, or null. */
export function recall(key) {
  try { return window.localStorage.getItem(PREFIX + key); } catch (err) { return null; }
}

/** Store a JSON-able value (null removes it). */
export function rememberJSON(key, value) {
  remember(key, value === null || value === undefined ? null : JSON.stringify(value));
}

/** The stored value, or `fallback` when it is missing or unreadable. */
export function recallJSON(key, fallback = null) {
  const raw = recall(key);
  if (raw === null) return fallback;
  try { return JSON.parse(raw); } catch (err) { return fallback; }
}
