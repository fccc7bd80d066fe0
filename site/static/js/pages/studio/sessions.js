/* Daydream studio — the sessions popover (#sessions-panel: earlier sign-ins, each with its
 * timeline) and the banner and title while an earlier session is shown. */
import { api, errorText } from "../../lib/api.js";
import { byId, el } from "../../lib/dom.js";
import { formatCreated, formatDate, plural, shorten } from "../../lib/format.js";
import { popover } from "../../lib/popover.js";
import { config } from "./config.js";

const PAGE = 20;
let loaded = 0;

function sessionItem(session) {
  const viewed = config.viewedSession;
  const first = formatCreated(session.first_at);
  const last = formatCreated(session.last_at);
  const when = session.first_at
    ? first.short + (session.last_at && last.short !== first.short ? " – " + last.short : "")
    : "Just started";
  const label = session.current ? "This session" : when;
  const href = session.current ? "/studio" : "/studio?session=" + encodeURIComponent(session.id);
  const viewing = session.current ? !viewed : viewed === session.id;
  return el("li", { class: "session-item" + (viewing ? " is-current" : "") }, [
    el("a", { class: "session-item__link", href, "aria-current": viewing ? "page" : null,
              title: session.first_at ? first.full : "" }, [
      el("span", { class: "session-item__when", text: label }),
      el("span", { class: "session-item__counts", text: plural(session.task_count, "task", "tasks") + " · " +
        plural(session.image_count, "image", "images") }),
      session.latest_prompt ? el("span", { class: "session-item__prompt", text: shorten(session.latest_prompt, 70) }) : null,
    ]),
  ]);
}

function loadSessions(more) {
  const list = byId("session-list");
  const moreButton = byId("sessions-more");
  const errorBox = byId("sessions-error");
  if (!more) {
    loaded = 0;
    list.replaceChildren();
  }
  api("GET", "/api/v1/sessions?limit=" + PAGE + "&offset=" + loaded).then((res) => {
    if (!res.ok || !res.data) {
      errorBox.textContent = errorText(res, "Could not load your sessions.");
      errorBox.hidden = false;
      return;
    }
    errorBox.hidden = true;
    loaded += res.data.items.length;
    res.data.items.forEach((session) => list.appendChild(sessionItem(session)));
    moreButton.hidden = loaded >= res.data.total;
  });
}

export function initSessions() {
  const more = byId("sessions-more");
  if (!popover(byId("sessions-toggle"), byId("sessions-panel"), { onOpen: () => loadSessions(false) })) return;
  more.addEventListener("click", () => loadSessions(true));
}

/** An earlier session: the banner, and its date in the title. */
export function showViewedSession() {
  const viewed = config.viewedSession;
  if (!viewed) return;
  const banner = byId("session-banner");
  if (banner) banner.hidden = false;
  const title = byId("timeline-title");
  if (title) title.textContent = "An earlier session";
  document.title = "Earlier session · Daydream";
  api("GET", "/api/v1/sessions?limit=200").then((res) => {
    if (!res.ok || !res.data) return;
    const found = res.data.items.find((x) => x.id === viewed);
    if (found && title && found.first_at) title.textContent = "Session of " + formatDate(found.first_at);
  });
}
