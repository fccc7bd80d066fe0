/* Daydream gallery — new images while the page is open: offered ("3 new images · show")
 * instead of shifting what is shown. Polled, not Socket.IO: an open socket counts as an
 * open studio page, which would keep "cancel my tasks when I leave the studio" from
 * acting (lib/archive.js holds the socket only while a ZIP is being made). */
import { api } from "../../lib/api.js";
import { byId } from "../../lib/dom.js";
import { plural } from "../../lib/format.js";
import { apiFilters } from "./address.js";
import { refreshBoards } from "./boards.js";
import { reload } from "./loading.js";
import { list } from "./state.js";

const POLL_MS = 15000;
const newImages = byId("new-images");

function checkForNew() {
  if (document.hidden || !list.before || list.loading) return;
  const mine = list.generation;
  const params = apiFilters();
  params.set("limit", "1");
  api("GET", "/api/v1/images?" + params.toString()).then((res) => {
    if (mine !== list.generation || !res.ok || !res.data) return;
    const fresh = res.data.total - list.total; // removals lower both counts alike
    newImages.hidden = fresh <= 0;
    if (fresh > 0) {
      newImages.textContent = plural(fresh, "new image", "new images") + " · show";
      refreshBoards();
    }
  });
}

export function initFresh() {
  newImages.addEventListener("click", () => {
    newImages.hidden = true;
    window.scrollTo({ top: 0 });
    reload();
    refreshBoards();
  });
  window.setInterval(checkForNew, POLL_MS);
  document.addEventListener("visibilitychange", checkForNew);
}
