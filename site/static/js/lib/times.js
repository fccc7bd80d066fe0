/* Daydream — times the server renders in its partials, shown in the reader's time zone:
 *   <time class="js-local-time" datetime="ISO" data-format="date|ago">fallback</time>
 * No data-format: the day and time ("1 Dec 2026, 14:05"). "ago": "5 min ago", with the
 * full time as a tooltip. The text inside is the server's UTC fallback. */
import { $all } from "./dom.js";
import { ago, formatDate, parseTime } from "./format.js";

const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** The text for an ISO time in a format ("date", "ago" or the default); null when the
 * time cannot be read (the fallback text stays). Pure: unit-tested with node --test. */
export function localTime(iso, format, now) {
  const t = parseTime(iso);
  if (t === null) return null;
  if (format === "date") return dayFormat.format(new Date(t));
  if (format === "ago") return ago(iso, now);
  return formatDate(iso);
}

/** Localize every time.js-local-time under root (the document by default). */
export function localizeTimes(root) {
  $all("time.js-local-time", root).forEach((node) => {
    const iso = node.getAttribute("datetime");
    const text = localTime(iso, node.dataset.format);
    if (text === null) return;
    node.textContent = text;
    if (node.dataset.format === "ago") node.title = formatDate(iso);
  });
}
