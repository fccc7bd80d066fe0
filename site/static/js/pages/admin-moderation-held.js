/* Daydream — Admin → Moderation, "Held for review": the images the image check held
 * (DAYDREAM_SAFETY=flag), the longest waiting first. Staff open a picture full size,
 * release it (its owner sees it again) or delete it (files and row; not refunded).
 *
 * GET    /api/v1/admin/moderation/held?offset&limit     -> {items: [held], total}
 * GET    /api/v1/admin/moderation/held/{id}/thumbnail   (and /full): the picture, staff only
 * POST   /api/v1/admin/moderation/held/{id}/release     {reason} -> held
 * DELETE /api/v1/admin/moderation/held/{id}?reason=     -> 204
 * held: {id, safety_label, width, height, created_at, owner: {id, username}, task_id, prompt,
 *        url, thumbnail_url}
 */
import { api, errorText } from "../lib/api.js";
import { askText } from "../lib/confirm.js";
import { byId, el } from "../lib/dom.js";
import { ago, formatDate, shorten } from "../lib/format.js";
import { busy, say, showAlert } from "../lib/forms.js";

const BASE = "/api/v1/admin/moderation/held";
const PAGE = 50;
const table = byId("held-table");
const body = byId("held-body");
let items = [];
let total = 0;

function heldRow(item) {
  const who = item.owner ? item.owner.username : "(deleted account)";
  const release = el("button", { type: "button", class: "btn btn--tiny held-release", text: "Release",
    "aria-label": "Release the image of " + who });
  const remove = el("button", { type: "button", class: "btn btn--tiny btn--danger held-delete", text: "Delete",
    "aria-label": "Delete the image of " + who });
  release.addEventListener("click", () => decide(item, "release", release));
  remove.addEventListener("click", () => decide(item, "delete", remove));
  return el("tr", { class: "held-row", dataset: { imageId: item.id } }, [
    el("td", { "data-label": "Picture" }, [
      el("a", { class: "report-picture", href: item.url, target: "_blank", rel: "noopener",
                "aria-label": "Open the held image of " + who + " full size in a new tab" }, [
        el("img", { class: "report-thumb", src: item.thumbnail_url, alt: "", loading: "lazy",
                    width: "64", height: "64" }),
      ]),
    ]),
    el("td", { "data-label": "Owner", text: who }),
    el("td", { "data-label": "Prompt", class: "report-reason", text: shorten(item.prompt || "", 200) }),
    el("td", { "data-label": "Classifier" }, [el("code", { text: item.safety_label || "—" })]),
    el("td", { "data-label": "Made" }, [
      el("time", { datetime: item.created_at || "", title: formatDate(item.created_at), text: ago(item.created_at, undefined, "") }),
    ]),
    el("td", { "data-label": "Decision", class: "report-actions" }, [release, " ", remove]),
  ]);
}

function render() {
  body.replaceChildren(...items.map(heldRow));
  byId("held-count").textContent = total ? "(" + total + ")" : "";
  byId("held-empty").hidden = items.length > 0;
  byId("held-loading").hidden = true;
  byId("held-more-wrap").hidden = items.length >= total;
  table.setAttribute("aria-busy", "false");
}

function load(more) {
  const offset = more ? items.length : 0;
  return api("GET", BASE + "?offset=" + offset + "&limit=" + PAGE).then((res) => {
    byId("held-loading").hidden = true;
    if (!res.ok) {
      showAlert("held-error", errorText(res, "Could not load the held images."));
      return;
    }
    showAlert("held-error", "");
    items = more ? items.concat(res.data.items || []) : (res.data.items || []);
    total = res.data.total || 0;
    render();
  });
}

function decide(item, action, button) {
  if (action === "delete") {
    askText({
      title: "Delete this image for good?", text: "Its owner is not refunded.", label: "Reason (optional)",
      ok: "Delete image", danger: true,
    }).then((reason) => {
      if (reason === null) return; // canceled
      send(item, api("DELETE", BASE + "/" + encodeURIComponent(item.id) + "?reason=" + encodeURIComponent(reason)), action, button);
    });
  } else {
    send(item, api("POST", BASE + "/" + encodeURIComponent(item.id) + "/release", {}), action, button);
  }
}

/** Wait for a decision's request: the row leaves the list once it is saved. */
function send(item, request, action, button) {
  busy(button, true);
  request.then((res) => {
    busy(button, false);
    if (!res.ok && res.status !== 404) {
      showAlert("held-error", errorText(res, "The decision was not saved."));
      return;
    }
    showAlert("held-error", "");
    say("held-status", res.ok ? (action === "delete" ? "Image deleted." : "Image released to " +
      (item.owner ? item.owner.username : "its owner") + ".") : "Another staff member decided already.", res.ok);
    items = items.filter((other) => other.id !== item.id);
    total = Math.max(0, total - 1);
    render();
    if (items.length === 0 && total > 0) load(false);
  });
}

byId("held-more").addEventListener("click", () => load(true));
load(false);
