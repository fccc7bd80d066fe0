/* Daydream — a class's page (/classes/<id>). For its teachers: tabs (members, join codes,
 * settings, gallery, activity); for its pupils: the class gallery and their own images to
 * share. The lists are server-rendered partials (site/templates/classes/_*.html) fetched
 * again after a change; actions go to /api/v1/classes/<id>/… (views/api/classes.py).
 * The parts: members.js, codes.js, settings.js, images.js. */
import { $all, byId } from "../../lib/dom.js";
import { loadFragment, onPager, withQuery } from "../../lib/fragment.js";
import { localizeTimes } from "../../lib/times.js";
import { initCodes } from "./codes.js";
import { initImages } from "./images.js";
import { initMembers } from "./members.js";
import { initSettings } from "./settings.js";

const root = byId("class-page");
const classId = root.dataset.classId;
const teaching = root.dataset.teaching === "true";
const base = "/classes/" + encodeURIComponent(classId);
const apiBase = "/api/v1" + base;

/** A part of the page fetched again: refresh(name, offset). */
const parts = {
  members: { target: byId("members-list"), path: base + "/members" },
  codes: { target: byId("codes-list"), path: base + "/codes" },
  audit: { target: byId("audit-list"), path: base + "/audit" },
  gallery: { target: byId("gallery-list"), path: base + "/gallery" },
  own: { target: byId("own-list"), path: base + "/mine" },
};

export function refresh(name, offset) {
  const part = parts[name];
  if (!part || !part.target) return Promise.resolve(null);
  return loadFragment(part.target, withQuery(part.path, { offset: offset || 0 }));
}

/** The page's status line. */
export function say(text) {
  byId("class-status").textContent = text || "";
}

["audit", "gallery", "own"].forEach((name) => onPager(parts[name].target, (offset) => refresh(name, offset)));

/* ---------- tabs (teachers) ---------- */
const tabs = $all('.tabs [role="tab"]');
const tabName = (tab) => tab.id.replace("tab-", "");

function showTab(name, focus) {
  if (!tabs.length) return;
  if (!tabs.some((tab) => tabName(tab) === name)) name = "members";
  tabs.forEach((tab) => {
    const on = tabName(tab) === name;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    tab.tabIndex = on ? 0 : -1;
    const panel = byId(tab.getAttribute("aria-controls"));
    if (panel) panel.hidden = !on;
    if (on && focus) tab.focus();
  });
  if (name === "activity") refresh("audit", 0);
}

tabs.forEach((tab, i) => {
  tab.addEventListener("click", (event) => {
    event.preventDefault();
    history.replaceState(null, "", "#" + tabName(tab));
    showTab(tabName(tab));
  });
  tab.addEventListener("keydown", (event) => {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    event.preventDefault();
    const next = tabs[(i + step + tabs.length) % tabs.length];
    history.replaceState(null, "", "#" + tabName(next));
    showTab(tabName(next), true);
  });
});
window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
showTab(location.hash.slice(1));

const page = { classId, base, apiBase, teaching, refresh, say };
if (teaching) {
  initMembers(page);
  initCodes(page);
  initSettings(page);
}
initImages(page);
localizeTimes(root);
root.dataset.ready = "class";
