/* Daydream gallery — a thumbnail's tile in the grid: its picture (or "held for review"),
 * its select and star buttons, and an "Upload" or "Mask" badge. */
import { $, byId, el, svg } from "../../lib/dom.js";
import { shorten } from "../../lib/format.js";
import { selected } from "./state.js";

const STAR = "M12 3.8l2.5 5.2 5.7.8-4.1 4 1 5.6L12 16.7l-5.1 2.7 1-5.6-4.1-4 5.7-.8z";
const CHECK = "M5 12.5l4.5 4.5L19 7.5";

export const grid = byId("gallery-grid");

// What the lightbox shows for an image held for review (its files are staff's only).
export const HELD_PICTURE = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512" fill="#1d2030"/>' +
  '<text x="256" y="256" fill="#a3a9bd" font-family="sans-serif" font-size="30" text-anchor="middle" ' +
  'dominant-baseline="middle">Held for review</text></svg>');

export function tileFor(id) {
  return grid.querySelector('[data-id="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"]');
}

export function altOf(image) {
  if (image.prompt) return shorten(image.prompt, 140);
  return image.kind === "upload" ? "An uploaded image" : image.kind === "mask" ? "An inpainting mask" : "An image";
}

export function createTile(image) {
  const img = el("img", {
    class: "tile__img", src: image.thumbnail_url, alt: altOf(image), loading: "lazy", decoding: "async",
    width: image.width, height: image.height,
  });
  // An image the image check held: no picture (its files are staff's) until staff release it.
  const held = image.review === "held";
  const tile = el("div", { class: "tile" + (held ? " tile--held" : ""), role: "listitem", dataset: { id: image.id } }, [
    held ? el("div", { class: "gallery-held", role: "img", "aria-label": "Held for review: " + altOf(image),
                       title: "The image check held this image; staff will release or remove it." },
              [el("span", { class: "task-held__label", text: "Held for review" })])
      : el("a", { class: "tile__link", href: "/images/" + encodeURIComponent(image.id), title: image.prompt || "" }, [img]),
    el("button", { type: "button", class: "tile__select", "aria-pressed": "false", "aria-label": "Select this image" }, [svg(CHECK)]),
    el("button", { type: "button", class: "tile__star", "aria-pressed": "false" }, [svg(STAR)]),
    el("span", { class: "tile__badge", hidden: image.kind !== "upload" && image.kind !== "mask",
                 text: image.kind === "mask" ? "Mask" : "Upload" }),
  ]);
  updateTile(tile, image);
  return tile;
}

export function updateTile(tile, image) {
  if (!tile) return;
  const on = selected.has(image.id);
  tile.classList.toggle("is-selected", on);
  const select = $(".tile__select", tile);
  select.setAttribute("aria-pressed", on ? "true" : "false");
  select.setAttribute("aria-label", (on ? "Deselect" : "Select") + " this image");
  const star = $(".tile__star", tile);
  star.setAttribute("aria-pressed", image.starred ? "true" : "false");
  star.setAttribute("aria-label", image.starred ? "Unstar" : "Star");
  star.title = image.starred ? "Starred: click to unstar" : "Star";
  tile.classList.toggle("is-starred", !!image.starred);
}
