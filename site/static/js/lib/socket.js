/* Daydream — the one Socket.IO connection of a page (the vendored client: a page that
 * needs it loads vendor/socket.io.min.js with `defer` before its module). Events: docs/API.md.
 *
 * WebSocket only, as the server wants it: it runs several web processes, and a
 * long-polling session's requests could reach different ones, while a WebSocket stays
 * in the process that took it. Where no WebSocket gets through (an old browser, or a
 * proxy that does not pass the upgrade), pages go on without live updates (the studio
 * and the archive box refresh by themselves) and the console says why, once. */

let socket = null;
let explained = false;

const PROXY_HINT = "Daydream: live updates need a WebSocket to /socket.io/, and none could be " +
  "opened although the site answers. A proxy in front of Daydream must pass WebSocket upgrades " +
  "(the Upgrade and Connection headers). Meanwhile the page refreshes by itself.";

/** Say why live updates are off, once: only when the site answers but the socket does not. */
function explain(err) {
  if (explained || !err || err.type !== "TransportError") return; // refused sign-ins are not this
  if (typeof navigator !== "undefined" && navigator.onLine === false) return;
  if (typeof fetch !== "function") return;
  explained = true;
  fetch("/healthz", { cache: "no-store" }).then((res) => {
    if (res.status < 500) console.warn(PROXY_HINT);
    else explained = false; // the server is down or restarting: not a WebSocket problem
  }, () => { explained = false; });
}

/** The page's socket, connected on first use; null where the client or WebSockets are missing. */
export function getSocket() {
  if (socket) return socket;
  if (typeof window.io !== "function") return null;
  if (window.document && typeof window.WebSocket !== "function") {
    console.warn("Daydream: this browser cannot open WebSockets, so live updates are off; " +
      "the page refreshes by itself.");
    return null;
  }
  socket = window.io({ transports: ["websocket"] });
  if (typeof socket.on === "function") socket.on("connect_error", explain);
  return socket;
}

/** Listen for an event; returns a function that stops listening (a no-op without a socket). */
export function on(event, handler) {
  const s = getSocket();
  if (!s) return () => {};
  s.on(event, handler);
  return () => s.off(event, handler);
}
