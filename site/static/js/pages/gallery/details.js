/* Daydream gallery — the lightbox's details panel: the image's prompt and parameters (from
 * its metadata, with the studio's names of models and schedulers; an inpainted image's
 * settings and its "Show mask" overlay: maskoverlay.js), and what can be done to it there:
 * star, public, board, board cover, copy the seed, reuse, variant, delete. */
import { api, errorText } from "../../lib/api.js";
import { ask } from "../../lib/confirm.js";
import { byId, copyText, el } from "../../lib/dom.js";
import { formatDate } from "../../lib/format.js";
import { guideLines } from "../../lib/guidewords.js";
import { onBoards, refreshBoards } from "./boards.js";
import { say } from "./config.js";
import { changed, removeFromView } from "./loading.js";
import { boardById, catalog, list } from "./state.js";
import { inpaintOf, inpaintRows, maskOverlay } from "./maskoverlay.js";
import { currentImage, offerOverlay, showNear, viewerIndex } from "./viewer.js";

let detailsFor = null; // the id of the image whose parameters the panel shows
let detailSeq = 0;

/* The studio's names of models and schedulers ("Euler", "Demo (tiny, CPU)"), for the
 * details: the PNG's parameters hold their ids. Asked for once, when first needed; an id
 * that is not listed (a model disabled since) is shown as it is. */
let names = null;
function loadNames() {
  if (!names) {
    names = Promise.all([api("GET", "/api/v1/models"), api("GET", "/api/v1/schedulers")]).then(([m, s]) => {
      const table = (res) => new Map(((res.ok && res.data && res.data.items) || []).map((i) => [i.id, i.name]));
      return { model: table(m), scheduler: table(s) };
    });
  }
  return names;
}
const nameOf = (table, id) => (id && table && table.get(id)) || id;

const PARAM_LABELS = [
  ["size", "Size"], ["steps", "Steps"], ["guidance", "Guidance"], ["scheduler", "Scheduler"],
  ["model", "Model"], ["strength", "Strength"], ["created", "Made"], ["kind", "Kind"],
];

/** The details panel of the image shown. */
export function renderDetails() {
  const image = currentImage();
  if (!image) return;
  if (detailsFor !== image.id) {
    detailsFor = image.id;
    loadDetails(image);
  }
  const star = byId("detail-star");
  star.setAttribute("aria-pressed", image.starred ? "true" : "false");
  star.textContent = image.starred ? "★ Starred" : "☆ Star";
  byId("detail-public").checked = !!image.public;
  byId("detail-download").href = image.url;
  byId("detail-download").setAttribute("download", "daydream-" + image.id + ".png");
  byId("detail-reuse").href = "/studio?reuse=" + encodeURIComponent(image.id);
  byId("detail-reuse").hidden = image.kind === "upload" || image.kind === "mask";
  byId("detail-variant").href = "/studio?variant=" + encodeURIComponent(image.id);
  byId("detail-variant").hidden = image.kind === "mask";
  renderDetailBoards();
}

/** The lightbox closed: the next image shown reads its parameters afresh. */
export function forgetDetails() { detailsFor = null; }

function renderDetailBoards() {
  const select = byId("detail-board");
  const image = currentImage();
  select.replaceChildren(el("option", { value: "", text: "No board" }),
    ...catalog.boards.map((b) => el("option", { value: b.id, text: b.name })));
  select.value = image && image.board_id ? image.board_id : "";
  const board = image && image.board_id ? boardById(image.board_id) : null;
  const cover = byId("detail-cover");
  cover.hidden = !board;
  if (board) {
    const isCover = board.cover_image_id === image.id;
    cover.disabled = isCover;
    cover.textContent = isCover ? "The board’s cover" : "Make it the board’s cover";
  }
}

function detailNote(text, isError) {
  const note = byId("detail-message");
  note.textContent = text || "";
  note.classList.toggle("is-error", !!isError);
}

function loadDetails(image) {
  const seq = ++detailSeq;
  detailNote("");
  byId("lightbox-title").textContent = image.kind === "upload" ? "Uploaded image" : image.kind === "mask" ? "Mask" : "Image";
  byId("detail-prompt").textContent = image.prompt || (image.kind === "upload" ? "An image you uploaded."
    : image.kind === "mask" ? "An inpainting mask: the white area is repainted." : "");
  byId("detail-negative").hidden = true;
  byId("detail-seed-row").hidden = true;
  renderParams(image, {});
  if (image.review === "held") {  // its files, metadata too, are staff's until released
    detailNote("Held for review: the image check held this image; staff will release or remove it.");
    return;
  }
  Promise.all([api("GET", image.metadata_url), loadNames()]).then(([res, known]) => {
    if (seq !== detailSeq) return;
    if (!res.ok || !res.data) {
      detailNote(errorText(res, "Could not read this image's parameters."), true);
      return;
    }
    const meta = res.data;
    if (meta.prompt) byId("detail-prompt").textContent = meta.prompt;
    const negative = byId("detail-negative");
    negative.hidden = !meta.negative_prompt;
    negative.textContent = meta.negative_prompt ? "Avoid: " + meta.negative_prompt : "";
    const seed = meta.seed !== undefined && meta.seed !== null ? meta.seed : image.seed;
    const noSeed = seed === null || seed === undefined;
    byId("detail-seed-row").hidden = noSeed;
    byId("detail-seed").textContent = noSeed ? "" : String(seed);
    renderParams(image, meta, known);
    showMask(image, meta, seq);
  });
}

/** Offer the mask of an inpainted image as the lightbox's overlay (once it is drawn). */
function showMask(image, meta, seq) {
  maskOverlay(meta, { width: image.width, height: image.height }).then((src) => {
    if (seq === detailSeq && src) offerOverlay(src);
  }, () => {
    if (seq === detailSeq) detailNote("The mask of this image is gone: it cannot be shown.");
  });
}

function renderParams(image, meta, known) {
  const values = {
    size: (meta.width || image.width) + " × " + (meta.height || image.height),
    steps: meta.steps, guidance: meta.guidance,
    scheduler: nameOf(known && known.scheduler, meta.scheduler), model: nameOf(known && known.model, meta.model),
    strength: meta.init_image || inpaintOf(meta) ? meta.strength : null,
    created: formatDate(image.created_at),
    kind: image.kind === "upload" ? "Upload" + (meta.original_format ? " (" + meta.original_format + ")" : "")
      : image.kind === "mask" ? "Inpainting mask" : null,
  };
  const rows = PARAM_LABELS.filter(([key]) => values[key] !== null && values[key] !== undefined && values[key] !== "")
    .map(([key, label]) => [label, String(values[key])]);
  // An inpainted image: its settings, after the strength and before the date.
  const at = rows.findIndex(([label]) => label === "Made");
  rows.splice(at === -1 ? rows.length : at, 0, ...inpaintRows(inpaintOf(meta)));
  // An upscale: how, and the image it was made from (a link to it in the gallery).
  const upscale = meta.upscale || null;
  if (upscale) rows.splice(0, 0, ["Upscale", upscaleText(upscale, known)]);
  // Its guides (issue 25): each ControlNet unit and reference, before the date.
  const made = rows.findIndex(([label]) => label === "Made");
  rows.splice(made === -1 ? rows.length : made, 0, ...guideLines(meta, known && Object.fromEntries(known.model)));
  const shown = rows.map(([label, text]) => el("div", { class: "detail-params__row" }, [
    el("dt", { text: label }), el("dd", { text })]));
  const source = image.source_image || meta.source_image;
  if (source) {
    shown.unshift(el("div", { class: "detail-params__row detail-source" }, [el("dt", { text: "Upscaled from" }),
      el("dd", {}, [el("a", { id: "detail-source", href: "/images/" + encodeURIComponent(source), text: "the original image" })])]));
  }
  // An edit: the pictures it changed (links to them here).
  const edited = meta.edit && Array.isArray(meta.edit.images) ? meta.edit.images : [];
  if (edited.length) {
    shown.unshift(el("div", { class: "detail-params__row detail-edit-source" }, [el("dt", { text: "Edited from" }),
      el("dd", {}, edited.map((id, i) => el("a", { href: "/images/" + encodeURIComponent(id),
        text: edited.length > 1 ? "picture " + (i + 1) + (i < edited.length - 1 ? ", " : "") : "the original image" })))]));
  }
  byId("detail-params").replaceChildren(...shown);
}

/** "×2, Lanczos, refined (strength 0.3, 20 steps)". */
function upscaleText(upscale, known) {
  const scale = upscale.scale ? "×" + Number(upscale.scale).toLocaleString("en", { maximumFractionDigits: 2 }) : "";
  const name = upscale.upscaler === "lanczos" ? "Lanczos" : upscale.upscaler === "nearest" ? "Nearest"
    : nameOf(known && known.model, upscale.upscaler);
  const refine = upscale.refine ? "refined (strength " + upscale.refine.strength + ", " + upscale.refine.steps + " steps)" : "";
  return [scale, name, refine].filter(Boolean).join(", ");
}

function patchImage(image, change, done) {
  return api("PATCH", "/api/v1/images/" + encodeURIComponent(image.id), change).then((res) => {
    if (!res.ok) {
      detailNote(errorText(res, "Could not save that."), true);
      renderDetails();
      return;
    }
    detailNote(done || "Saved.");
    const staying = viewerIndex();
    changed([res.data]);
    // The image may have left the view (unstarred in "Starred", moved out of the board).
    if (!list.shown.has(image.id)) showNear(staying);
    refreshBoards();
  });
}

function deleteImage() {
  const image = currentImage();
  if (!image) return;
  const index = viewerIndex();
  ask({
    title: "Delete this image?", text: "The image and its file are deleted for good. This cannot be undone.",
    ok: "Delete image", danger: true,
  }).then((answer) => {
    if (!answer.ok) return;
    api("DELETE", "/api/v1/images/" + encodeURIComponent(image.id)).then((res) => {
      if (!res.ok) {
        detailNote(errorText(res, "Could not delete the image."), true);
        return;
      }
      removeFromView([image.id]);
      say("Image deleted");
      refreshBoards();
      showNear(index);
    });
  });
}

export function initDetails() {
  onBoards(renderDetailBoards);
  byId("detail-star").addEventListener("click", () => {
    const image = currentImage();
    if (image) patchImage(image, { starred: !image.starred }, image.starred ? "Unstarred." : "Starred.");
  });
  byId("detail-public").addEventListener("change", () => {
    const image = currentImage();
    if (!image) return;
    const on = byId("detail-public").checked;
    patchImage(image, { public: on }, on ? "Public now." : "Private now.");
  });
  byId("detail-board").addEventListener("change", () => {
    const image = currentImage();
    if (!image) return;
    const value = byId("detail-board").value || null;
    const board = value ? boardById(value) : null;
    patchImage(image, { board_id: value }, board ? "Moved to “" + board.name + "”." : "In no board now.");
  });
  byId("detail-cover").addEventListener("click", () => {
    const image = currentImage();
    if (!image) return;
    api("PATCH", "/api/v1/boards/" + encodeURIComponent(image.board_id), { cover_image_id: image.id }).then((res) => {
      if (!res.ok) {
        detailNote(errorText(res, "Could not set the cover."), true);
        return;
      }
      detailNote("This is the board’s cover now.");
      refreshBoards();
    });
  });
  byId("detail-copy-seed").addEventListener("click", () => {
    const seed = byId("detail-seed").textContent;
    copyText(seed).then((ok) => detailNote(ok ? "Seed " + seed + " copied." : "Copy it by hand: " + seed));
  });
  byId("detail-delete").addEventListener("click", deleteImage);
}
