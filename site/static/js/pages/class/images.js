/* Daydream — the image grids of a class's page (pages/class/main.js): a teacher's Hide /
 * Unhide on a pupil's images and in the class gallery, a member's Share / Unshare of
 * their own images. */
import { api, errorText } from "../../lib/api.js";
import { byId } from "../../lib/dom.js";
import { notice } from "../../lib/confirm.js";

export function initImages(page) {
  function hide(tile, hidden) {
    return api("PATCH", page.apiBase + "/images/" + encodeURIComponent(tile.dataset.imageId), { hidden })
      .then((res) => {
        if (!res.ok) return notice({ title: hidden ? "Not hidden" : "Not shown", text: errorText(res, "Try again.") });
        page.say(hidden ? "The image is hidden from the class gallery, the showcase and shared links."
          : "The image is shown again.");
        page.refresh("gallery");
        page.refresh("audit");
        return page.reloadPupil ? page.reloadPupil() : null;
      });
  }

  function share(tile, on) {
    const id = tile.dataset.imageId;
    const request = on ? api("POST", page.apiBase + "/gallery", { image_id: id })
      : api("DELETE", page.apiBase + "/gallery/" + encodeURIComponent(id));
    return request.then((res) => {
      if (!res.ok) return notice({ title: on ? "Not shared" : "Not taken out", text: errorText(res, "Try again.") });
      page.say(on ? "Shared with the class." : "Taken out of the class gallery.");
      page.refresh("gallery");
      return page.refresh("own", Number((byId("own-pager") || {}).dataset?.offset) || 0);
    });
  }

  byId("class-page").addEventListener("click", (event) => {
    const button = event.target.closest(".class-tile button[data-action]");
    if (!button) return;
    const tile = button.closest(".class-tile");
    button.disabled = true;
    const action = button.dataset.action;
    const done = action === "hide" || action === "unhide" ? hide(tile, action === "hide")
      : share(tile, action === "share");
    done.finally(() => { button.disabled = false; });
  });
}
