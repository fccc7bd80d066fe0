/* Daydream — TEMPORARY: window.Daydream for page scripts not yet moved to ES modules (lib/). */
(function () {
  "use strict";

  /* ---------- helpers shared by the page scripts: window.Daydream ----------
   * Page scripts are loaded with `defer` after this file, so they run after it. */

  /** The CSRF token of <meta name="csrf-token">, "" when the page has none. */
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function byId(id) { return document.getElementById(id); }

  /** Create an element: el("p", {class: "x", text: "hi", dataset: {...}}, [children]).
   * Attributes that are null, undefined or false are left out; true sets an empty one;
   * checked and disabled are set as properties. Falsy children are skipped. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
      else if (key === "checked" || key === "disabled") node[key] = !!value;
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  var MESSAGES = {
    401: "You are signed out; sign in again.",
    other: "The server answered {status}.",
    network: "Could not reach the server. Check your connection.",
  };

  /**
   * Call the API with the session cookie (and the CSRF header unless GET/HEAD).
   * body: a JSON-able value, or FormData (multipart; the browser sets the boundary).
   * options: {headers: extra headers, messages: {<status>: text, other: text with
   * "{status}", network: text}} for the errors made up when the answer has none.
   * Resolves (never rejects) to {ok, status, data, error, retryAfter}; error is the API's
   * {code, message, field?, fields?} or a made-up {code, message}.
   */
  function api(method, path, body, options) {
    options = options || {};
    var messages = {};
    [MESSAGES, options.messages || {}].forEach(function (source) {
      Object.keys(source).forEach(function (k) { messages[k] = source[k]; });
    });
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
    if (typeof FormData !== "undefined" && body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var extra = options.headers || {};
    Object.keys(extra).forEach(function (k) { init.headers[k] = extra[k]; });

    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (err) { data = null; }
        var status = response.status;
        return {
          ok: response.ok,
          status: status,
          data: data,
          retryAfter: response.headers.get("Retry-After"),
          error: response.ok ? null : (data && data.error) || {
            code: "http_" + status,
            message: messages[status] || String(messages.other).replace("{status}", status),
          },
        };
      });
    }, function () {
      return {
        ok: false, status: 0, data: null, retryAfter: null,
        error: { code: "network", message: messages.network },
      };
    });
  }

  window.Daydream = { api: api, el: el, byId: byId, csrfToken: csrfToken };
})();
