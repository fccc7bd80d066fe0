/* Daydream studio — the drawer: on narrow screens the panel slides over the timeline. */
import { byId } from "../../lib/dom.js";

const narrow = window.matchMedia("(max-width: 900px)");

export function isDrawer() { return narrow.matches; }

function panelIsOpen() {
  const panel = byId("studio-panel");
  return !!panel && panel.classList.contains("is-open");
}

/** Open the drawer (on a wide screen: focus the prompt). */
export function openPanel() {
  const panel = byId("studio-panel");
  const prompt = byId("prompt");
  if (!panel || !isDrawer()) {
    if (prompt) prompt.focus();
    return;
  }
  panel.classList.add("is-open");
  const backdrop = byId("panel-backdrop");
  if (backdrop) backdrop.hidden = false;
  const toggle = byId("panel-toggle");
  if (toggle) toggle.setAttribute("aria-expanded", "true");
  document.body.classList.add("drawer-open");
  const timeline = byId("timeline");
  if (timeline) timeline.inert = true;
  window.setTimeout(() => { if (prompt) prompt.focus({ preventScroll: true }); }, 60);
}

export function closePanel(returnFocus) {
  const panel = byId("studio-panel");
  if (!panel) return;
  const wasOpen = panelIsOpen();
  panel.classList.remove("is-open");
  const backdrop = byId("panel-backdrop");
  if (backdrop) backdrop.hidden = true;
  const toggle = byId("panel-toggle");
  if (toggle) toggle.setAttribute("aria-expanded", "false");
  document.body.classList.remove("drawer-open");
  const timeline = byId("timeline");
  if (timeline) timeline.inert = false;
  if (wasOpen && returnFocus && toggle) toggle.focus();
}

export function initPanel() {
  const toggle = byId("panel-toggle");
  const close = byId("panel-close");
  const backdrop = byId("panel-backdrop");
  if (toggle) toggle.addEventListener("click", () => { if (panelIsOpen()) closePanel(true); else openPanel(); });
  if (close) close.addEventListener("click", () => closePanel(true));
  if (backdrop) backdrop.addEventListener("click", () => closePanel(true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && panelIsOpen()) closePanel(true);
  });
  const onNarrowChange = () => { if (!isDrawer()) closePanel(false); };
  if (narrow.addEventListener) narrow.addEventListener("change", onNarrowChange);
  else if (narrow.addListener) narrow.addListener(onNarrowChange);
}
