/* Daydream — server-rendered partials (Jinja) swapped into a page: the ledger and API
 * tokens of /account, the staff users and vouchers tables. The server renders them for
 * the first page load and again, fetched as HTML, after a change, a search or a page. */
import { fetchHtml } from "./api.js";
import { setHtml } from "./dom.js";
import { localizeTimes } from "./times.js";

const latest = new WeakMap(); // target -> the number of its newest request

/** Fetch `path` and put it in `target` (its times localized). Resolves to fetchHtml's
 * {ok, status, html, error}, with stale: true when a newer loadFragment of the same target
 * was started meanwhile (its answer is not shown: typing a search fast never ends on an
 * older one). On failure the target keeps what it showed. */
export function loadFragment(target, path) {
  const n = (latest.get(target) || 0) + 1;
  if (target) latest.set(target, n);
  return fetchHtml(path).then((res) => {
    if (target && latest.get(target) !== n) return Object.assign({}, res, { stale: true });
    if (res.ok && target) {
      setHtml(target, res.html);
      localizeTimes(target);
    }
    return res;
  });
}

/** The pager inside `container` (site/templates/_pager.html): its buttons carry the
 * offset they go to in data-go; go(offset) is called on a click. Delegated, so it keeps
 * working after loadFragment replaced the pager. */
export function onPager(container, go) {
  if (!container) return;
  container.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-go]");
    if (!button || button.disabled || !container.contains(button)) return;
    go(Number(button.dataset.go) || 0);
  });
}

/** A path with a query string: withQuery("/a", {q: "x", offset: 0}) → "/a?q=x&offset=0";
 * empty, null and undefined values are left out. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  Object.keys(params || {}).forEach((key) => {
    const value = params[key];
    if (value !== "" && value !== null && value !== undefined) query.set(key, String(value));
  });
  const text = query.toString();
  return text ? path + "?" + text : path;
}
