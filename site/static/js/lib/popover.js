/* Daydream — a popover opened by a toggle button (aria-expanded): the toggle opens and
 * closes it, Escape closes it (focus back on the toggle), a click outside closes it. */

/**
 * Wire `panel` (hidden while closed) to `toggle`. options.onOpen runs after it opens (load
 * its content, focus its first control). Returns {open, close, isOpen}; null without both.
 */
export function popover(toggle, panel, options = {}) {
  if (!toggle || !panel) return null;
  const isOpen = () => !panel.hidden;
  const open = () => {
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    if (options.onOpen) options.onOpen();
  };
  const close = (returnFocus) => {
    if (panel.hidden) return;
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    if (returnFocus) toggle.focus();
  };
  toggle.addEventListener("click", () => { if (isOpen()) close(false); else open(); });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isOpen()) close(true);
  });
  document.addEventListener("click", (event) => {
    if (!isOpen()) return;
    if (panel.contains(event.target) || toggle.contains(event.target)) return;
    close(false);
  });
  return { open, close, isOpen };
}
