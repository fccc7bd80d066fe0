/* Daydream — the Class page's members (pages/class/main.js): a pupil's images (with Hide /
 * Unhide, images.js), a new password shown once, removing a pupil. */
import { api, errorText } from "../../lib/api.js";
import { byId, setHtml } from "../../lib/dom.js";
import { ask, confirmAction, notice } from "../../lib/confirm.js";
import { loadFragment, onPager, withQuery } from "../../lib/fragment.js";

export function initMembers(page) {
  const list = byId("members-list");
  const panel = byId("pupil-images");
  const images = byId("pupil-images-list");
  let pupil = null;

  function showImages(userId, offset) {
    pupil = userId;
    panel.hidden = false;
    return loadFragment(images, withQuery(page.base + "/pupils/" + encodeURIComponent(userId) + "/images",
                                          { offset: offset || 0 }))
      .then((res) => {
        if (!res.ok && !res.stale) setHtml(images, "");
        if (res.ok) panel.scrollIntoView({ block: "nearest" });
        return res;
      });
  }
  onPager(images, (offset) => showImages(pupil, offset));
  page.reloadPupil = () => (pupil ? showImages(pupil, Number((byId("images-pager") || {}).dataset?.offset) || 0)
    : Promise.resolve(null));

  function newPassword(row) {
    const name = row.dataset.username;
    return confirmAction({
      title: "A new password for " + name + "?",
      text: "Their password stops working now and they are signed out everywhere. You will see the new one once: give it to them.",
      ok: "Make a new password", danger: true,
    }).then((ok) => {
      if (!ok) return null;
      return api("POST", page.apiBase + "/members/" + encodeURIComponent(row.dataset.userId) + "/password")
        .then((res) => {
          if (!res.ok) return notice({ title: "No new password", text: errorText(res, "Try again.") });
          page.refresh("audit");
          return ask({ title: "New password for " + name, text: "Give it to " + name + "; it is shown only now.",
                       input: { label: "Password", value: res.data.password }, ok: "Done", cancel: false });
        });
    });
  }

  function remove(row) {
    const name = row.dataset.username;
    return confirmAction({
      title: "Remove " + name + " from the class?",
      text: "Their account and images stay theirs; what they shared leaves the class gallery.",
      ok: "Remove", danger: true,
    }).then((ok) => {
      if (!ok) return null;
      return api("DELETE", page.apiBase + "/members/" + encodeURIComponent(row.dataset.userId)).then((res) => {
        if (!res.ok) return notice({ title: "Not removed", text: errorText(res, "Try again.") });
        page.say(name + " left the class.");
        if (pupil === row.dataset.userId) { panel.hidden = true; pupil = null; }
        page.refresh("members");
        page.refresh("gallery");
        return null;
      });
    });
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const row = button && button.closest("tr.member-row");
    if (!row) return;
    const action = button.dataset.action;
    if (action === "images") showImages(row.dataset.userId, 0);
    else if (action === "password") newPassword(row);
    else if (action === "remove") remove(row);
  });
}
