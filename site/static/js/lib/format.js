/* Daydream — text for numbers, times and counts. Pure: no DOM, unit-tested with node --test. */

/** "1 image", "3 images". */
export function plural(n, one, many) {
  return n + " " + (n === 1 ? one : many);
}

/** Cut text to n characters with an ellipsis. */
export function shorten(text, n) {
  text = String(text == null ? "" : text);
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

export function isNumber(v) {
  return typeof v === "number" && isFinite(v);
}

/** 12345 → "12,345". */
export function formatNumber(n) {
  try { return Number(n).toLocaleString("en-US"); } catch (err) { return String(n); }
}

/** The time left of a running task: "about 12 s left", "about 3 min left"; "" when unknown. */
export function formatEta(seconds) {
  if (!isNumber(seconds) || seconds < 0) return "";
  if (seconds >= 120) return "about " + Math.round(seconds / 60) + " min left";
  return "about " + Math.max(1, Math.round(seconds)) + " s left";
}

/** "12 s", "3 min": for the estimate line. */
export function formatSeconds(seconds) {
  if (seconds >= 120) return Math.round(seconds / 60) + " min";
  return (seconds > 0 ? Math.max(1, Math.round(seconds)) : 0) + " s";
}

/** How long something took: "4.2 s", "37 s", "2 min 5 s". */
export function formatDuration(seconds) {
  if (!isNumber(seconds)) return "";
  if (seconds >= 90) {
    const m = Math.floor(seconds / 60);
    return m + " min " + Math.round(seconds - m * 60) + " s";
  }
  return (seconds < 10 ? seconds.toFixed(1) : String(Math.round(seconds))) + " s";
}

/** Milliseconds since the epoch of an ISO time, or null. */
export function parseTime(iso) {
  const t = Date.parse(iso || "");
  return isNaN(t) ? null : t;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayTimeFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** {short, full}: the time alone for today, the day and time otherwise; "" when unknown. */
export function formatCreated(iso, now) {
  const t = parseTime(iso);
  if (t === null) return { short: "", full: "" };
  const d = new Date(t);
  const today = now ? new Date(now) : new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return { short: (sameDay ? timeFormat : dayTimeFormat).format(d), full: fullFormat.format(d) };
}

/** "1 Dec 2026, 14:05"; `empty` when unknown. */
export function formatDate(iso, empty = "") {
  const t = parseTime(iso);
  return t === null ? empty : dateFormat.format(new Date(t));
}

/** "just now", "5 min ago", "3 h ago", "4 days ago"; `never` when there is no time. */
export function ago(iso, now, never = "never") {
  const t = parseTime(iso);
  if (t === null) return never;
  const s = Math.max(0, ((now === undefined ? Date.now() : now) - t) / 1000);
  if (s < 90) return "just now";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400 * 2) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}
