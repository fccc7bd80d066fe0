/* Daydream — the showcase (/gallery): the lightbox (lib/lightbox.js) with keyboard
 * navigation, "Show more" (the next page rendered by the server: GET /gallery/items, the
 * same Jinja partial as the first page), for staff the curation buttons (hide, show,
 * unfeature, feature), and for other signed-in users a Report button. */
import { $, $all, byId } from "../lib/dom.js";
import { api, errorText, fetchHtml } from "../lib/api.js";
import { askText } from "../lib/confirm.js";
import { createLightbox } from "../lib/lightbox.js";

const showcase = $(".showcase");
if (showcase) start(showcase);

function start(root) {
  const grid = byId("showcase-grid");
  const more = byId("showcase-more");
  const statusEl = byId("showcase-status");
  const staff = root.dataset.staff === "true";
  const pageSize = parseInt(root.dataset.pageSize, 10) || 48;

  function say(text) { if (statusEl) statusEl.textContent = text || ""; }

  /* ---- Show more: the next page as HTML; its last element, a <template
     data-showcase-page>, says where the page after starts and how many there are. ---- */
  let next = 0;
  let total = 0;

  /** Read (and drop) the page markers in the grid. */
  function readMarkers() {
    $all("template[data-showcase-page]", grid).forEach((marker) => {
      next = parseInt(marker.dataset.next, 10) || 0;
      total = parseInt(marker.dataset.total, 10) || 0;
      marker.remove();
    });
    if (more) more.hidden = next >= total;
  }
  readMarkers();

  if (more) {
    more.addEventListener("click", () => {
      more.disabled = true;
      say("Loading…");
      const params = new URLSearchParams({ offset: String(next), limit: String(pageSize) });
      fetchHtml(root.dataset.itemsUrl + "?" + params.toString()).then((res) => {
        more.disabled = false;
        if (!res.ok) {
          say(errorText(res, "Could not load more pictures."));
          return;
        }
        const page = document.createElement("template");
        page.innerHTML = res.html;
        Array.from(page.content.children).forEach((node) => {
          // Something added meanwhile may shift a picture from one page to the next.
          if (node.id && document.getElementById(node.id)) return;
          grid.appendChild(node);
        });
        readMarkers();
        say("");
      });
    });
  }

  /* ---- Reporting a picture to staff (signed-in users): POST /api/v1/showcase/{id}/report
     {reason}; 201 a new report, 200 when theirs is open already. ---- */
  root.addEventListener("click", (event) => {
    const button = event.target.closest('button[data-action="report"]');
    if (!button) return;
    const li = button.closest("[data-id]");
    if (!li || !li.dataset.id) return;
    askText({
      title: "Report this picture to staff?",
      text: "Staff will look at it and may take it off the showcase.",
      label: "Why (optional)", maxLength: 500, multiline: true, ok: "Send report",
    }).then((reason) => {
      if (reason === null) return; // canceled
      button.disabled = true;
      say("Sending your report…");
      return api("POST", "/api/v1/showcase/" + encodeURIComponent(li.dataset.id) + "/report", { reason: reason.slice(0, 500) })
        .then((res) => {
          if (res.ok) {
            button.textContent = "Reported";
            say(res.status === 201 ? "Thank you: your report was sent to staff."
              : "You reported this picture already; staff will look at it.");
            return;
          }
          button.disabled = false;
          say(errorText(res, "Could not send your report."));
        });
    });
  });

  /* ---- Staff curation ---- */
  root.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !staff || button.dataset.action === "report") return;
    const li = button.closest("[data-id]");
    const id = li && li.dataset.id;
    if (!id) return;
    const action = button.dataset.action;
    const path = "/api/v1/showcase/" + encodeURIComponent(id);
    const request = action === "feature" ? api("POST", "/api/v1/showcase", { image_id: id })
      : action === "unfeature" ? api("DELETE", path)
        : api("PATCH", path, { hidden: action === "hide" });
    button.disabled = true;
    say("Saving…");
    request.then((res) => {
      if (res.ok) {
        window.location.reload();
        return;
      }
      button.disabled = false;
      say(errorText(res, "Could not save that."));
    });
  });

  /* ---- Lightbox: steps through the list of the picture opened (the showcase, or the
     candidates), round from the last to the first. ---- */
  const box = byId("lightbox");
  if (!box) return;
  let list = grid;
  let opened = null;
  const links = () => $all("a[data-lightbox]", list);
  const lightbox = createLightbox(box, {
    wrap: true,
    count: () => links().length,
    item: (index) => {
      const link = links()[index];
      const thumb = $("img", link);
      return { src: link.getAttribute("href"), preview: thumb ? thumb.getAttribute("src") : null,
        alt: link.title || "", caption: link.title || "" };
    },
    onShow: (index) => { opened = links()[index] || null; },
    onClose: () => opened,
  });

  root.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-lightbox]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    list = link.closest("ul") || grid;
    lightbox.open(links().indexOf(link));
  });
}
