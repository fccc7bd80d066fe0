/* Daydream gallery — the lightbox over the grid (lib/lightbox.js): the picture at a time,
 * stepping through the view and loading more at its end; the address names the image
 * shown. Its details panel is details.js's (onShow), and closing it goes back to the
 * image's tile. */
import { $, byId } from "../../lib/dom.js";
import { createLightbox } from "../../lib/lightbox.js";
import { writeUrl } from "./address.js";
import { loadPage } from "./loading.js";
import { indexOf, list } from "./state.js";
import { altOf, HELD_PICTURE, tileFor } from "./tiles.js";

let lightbox = null;
let shownId = null; // the image shown last: closing goes back to its tile

/** onShow(): an image is shown (fill the panel); onClose(): the lightbox closed. */
export function initViewer({ onShow, onClose }) {
  lightbox = createLightbox(byId("lightbox"), {
    count: () => list.items.length,
    total: () => list.total,
    item: (index) => {
      const image = list.items[index];
      if (image.review === "held") return { src: HELD_PICTURE, alt: "Held for review: " + altOf(image) };
      return { src: image.url, preview: image.thumbnail_url, alt: altOf(image) };
    },
    hasMore: () => !list.exhausted,
    more: () => loadPage(),
    onShow: () => {
      const image = currentImage();
      shownId = image ? image.id : null;
      onShow();
      writeUrl(image);
    },
    onClose: () => {
      const id = shownId;
      shownId = null;
      onClose();
      writeUrl(null);
      const tile = id ? tileFor(id) : null;
      if (!tile) return null;
      if (tile.scrollIntoView) tile.scrollIntoView({ block: "nearest" });
      return $(".tile__link", tile);
    },
  });
}

export function viewerOpen() { return !!lightbox && lightbox.isOpen(); }

/** The image the lightbox shows, or null. */
export function currentImage() {
  const index = lightbox ? lightbox.index() : -1;
  return index >= 0 ? list.items[index] : null;
}

/** The position of the image shown, -1 when closed. */
export function viewerIndex() { return lightbox ? lightbox.index() : -1; }

export function openAt(index) { lightbox.open(index); }

export function openImage(id) { lightbox.open(indexOf(id)); }

/** Offer an overlay (a data URL: the mask of an inpainted image) for the image shown, or none. */
export function offerOverlay(src) { if (lightbox) lightbox.overlay(src); }

/** Show the current image again (the list or the image changed). */
export function refreshViewer() { if (viewerOpen()) lightbox.refresh(); }

/** After the image shown left the view (or was deleted): show the one now in its place. */
export function showNear(index) {
  if (!list.items.length) lightbox.close();
  else lightbox.open(Math.min(index, list.items.length - 1));
}
