/* Daydream — the one wrapper around fetch for the JSON API (docs/API.md).
 *
 * api(method, path, body, options) resolves (never rejects) to
 *   {ok, status, data, error, retryAfter}
 * where error is the API's {code, message, field?, fields?} or a made-up {code, message}.
 * body: a JSON-able value, or FormData (multipart; the browser sets the boundary).
 * options: {headers, messages: {<status>: text, other: "... {status} ...", network: text},
 *           reauth: false to skip the password dialog}.
 * A 403 with code "reauth_required" opens the password dialog and, once the password is
 * accepted, sends the request again (once). */
import { csrfToken } from "./dom.js";
import { askPassword } from "./dialog.js";

const MESSAGES = {
  401: "You are signed out; sign in again.",
  413: "That is too large for the server.",
  other: "The server answered {status}. Please try again.",
  network: "Could not reach the server. Check your connection and try again.",
};

function request(method, path, body, options) {
  const messages = Object.assign({}, MESSAGES, options.messages || {});
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (typeof FormData !== "undefined" && body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  Object.assign(init.headers, options.headers || {});
  return fetch(path, init).then((response) => response.text().then((text) => {
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (err) { data = null; }
    const status = response.status;
    return {
      ok: response.ok,
      status,
      data,
      retryAfter: response.headers.get("Retry-After"),
      error: response.ok ? null : (data && data.error) || {
        code: "http_" + status,
        message: messages[status] || String(messages.other).replace("{status}", status),
      },
    };
  }), () => ({
    ok: false, status: 0, data: null, retryAfter: null,
    error: { code: "network", message: messages.network },
  }));
}

export function needsReauth(res) {
  return res.status === 403 && !!res.error && res.error.code === "reauth_required";
}

export function api(method, path, body, options = {}) {
  return request(method, path, body, options).then((res) => {
    if (!needsReauth(res) || options.reauth === false) return res;
    const plain = (m, p, b) => request(m, p, b, { reauth: false });
    return askPassword(plain).then((ok) => (ok ? request(method, path, body, options) : res));
  });
}

/** The error message of an answer, or `fallback`. */
export function errorText(res, fallback) {
  return (res && res.error && res.error.message) || fallback;
}

/** Fetch a server-rendered partial (HTML). Resolves to {ok, status, html, error}. */
export function fetchHtml(path) {
  return fetch(path, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(
    (response) => {
      // A fragment route answers a signed-out visitor with a redirect to the sign-in
      // page: that page must not be put inside a card.
      if (response.redirected) {
        return { ok: false, status: 401, html: "", error: { code: "not_signed_in", message: MESSAGES[401] } };
      }
      return response.text().then((html) => ({
        ok: response.ok,
        status: response.status,
        html: response.ok ? html : "",
        error: response.ok ? null : { code: "http_" + response.status, message: MESSAGES.other.replace("{status}", response.status) },
      }));
    },
    () => ({ ok: false, status: 0, html: "", error: { code: "network", message: MESSAGES.network } }),
  );
}

/** A random key for the Idempotency-Key header. */
export function newIdempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => ("0" + b.toString(16)).slice(-2)).join("");
}
