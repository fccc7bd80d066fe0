/* Daydream gallery (/images): boards, filters, an infinitely scrolling grid of
 * thumbnails, multi-select with bulk actions, and the lightbox with the image's details.
 * The entry module: it wires the parts and starts the page. Its data comes in the JSON
 * block #gallery-config (config.js); the contract is /api/v1 (docs/API.md).
 *
 *   state.js, config.js          what the parts share: the view, the boards, the images, the selection
 *   address.js, filters.js       the address bar; choosing a board and the filters
 *   loading.js                   the pages of the view (offset + `before` snapshot), status, empty state
 *   tiles.js, selection.js       the grid's tiles; click, shift-click, select all, Escape
 *   bulk.js                      the selection bar: star, move, delete, ZIP (lib/archive.js)
 *   boards.js                    the sidebar; create, rename, delete, "new results go here"
 *   viewer.js, details.js        the lightbox (lib/lightbox.js) and its details panel
 *   fresh.js                     new images while the page is open
 *   upscaling.js                 "Upscale" in the details panel (lib/upscale.js), its task followed
 *   editing.js                   "Edit" in the details panel (lib/edit.js), its task followed
 * Questions (delete?, a board's name) are the shared dialog's: lib/confirm.js.
 */
import { readUrl } from "./address.js";
import { initBoards, renderBoards } from "./boards.js";
import { initBulk, setStar } from "./bulk.js";
import { config } from "./config.js";
import { forgetDetails, initDetails, renderDetails } from "./details.js";
import { initEditing, renderEditing } from "./editing.js";
import { initFilters } from "./filters.js";
import { initFresh } from "./fresh.js";
import { initLoading, reload } from "./loading.js";
import { initSelection, renderSelection } from "./selection.js";
import { initUpscaling, renderUpscale } from "./upscaling.js";
import { indexOf, list, selected } from "./state.js";
import { createTile, grid } from "./tiles.js";
import { initViewer, openAt, openImage, refreshViewer, viewerOpen } from "./viewer.js";

initLoading({
  afterLoad: refreshViewer,
  afterChange: () => {
    if (!viewerOpen()) return;
    refreshViewer();
    renderDetails();
    renderUpscale();
    renderEditing();
  },
});
initViewer({ onShow: () => { renderDetails(); renderUpscale(); renderEditing(); }, onClose: forgetDetails });
initSelection({ onStar: (id, on) => setStar([id], on), onOpen: openImage });
initFilters();
initBoards();
initBulk();
initDetails();
initFresh();
initUpscaling();
initEditing();

readUrl();
renderBoards();
renderSelection();
const opening = config.open_image;
reload().then(() => {
  if (!opening) return;
  let index = indexOf(opening.id);
  if (index === -1) {
    // Not on the first page of this view: show it on its own after what is loaded.
    list.shown.set(opening.id, opening);
    list.items.push(opening);
    grid.appendChild(createTile(opening));
    index = list.items.length - 1;
  }
  openAt(index);
});

// For the console and tests.
window.daydreamGallery = {
  items: () => list.items,
  selected: () => Array.from(selected),
  reload,
};
