/* Daydream — the one Socket.IO connection of a page (the vendored client: a page that
 * needs it loads vendor/socket.io.min.js with `defer` before its module). Events: docs/API.md. */

let socket = null;

/** The page's socket, connected on first use; null where the client is missing. */
export function getSocket() {
  if (socket) return socket;
  if (typeof window.io !== "function") return null;
  socket = window.io({ transports: ["websocket", "polling"] });
  return socket;
}

/** Listen for an event; returns a function that stops listening (a no-op without a socket). */
export function on(event, handler) {
  const s = getSocket();
  if (!s) return () => {};
  s.on(event, handler);
  return () => s.off(event, handler);
}
