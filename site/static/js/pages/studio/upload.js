/* Daydream studio — the init image (image-to-image): choose, drop or paste a picture; it is
 * uploaded (POST /api/v1/uploads) as it is, or scaled down here to the user's pixel limit
 * when larger, and shown. The panel's size does not shrink it: the server keeps the upload
 * and the worker fits it to each task's size (init_fit), so a size chosen later loses nothing. */
import { api } from "../../lib/api.js";
import { announce, byId } from "../../lib/dom.js";
import { config } from "./config.js";
import { scheduleEstimate } from "./estimate.js";
import { clearFieldError, initFit, numberValue } from "./fields.js";
import { fitDescription, uploadSize } from "./sizes.js";
import { state } from "./state.js";

let uploadSeq = 0;

function setInitStatus(text) {
  const node = byId("init-status");
  if (!node) return;
  node.textContent = text || "";
  node.hidden = !text;
}

function showInitError(message) {
  const box = byId("init-error");
  if (!box) return;
  box.textContent = message;
  box.hidden = false;
  const input = byId("init-file");
  if (input) input.setAttribute("aria-invalid", "true");
}

function setBusy(on) {
  const drop = byId("init-drop");
  if (drop) drop.classList.toggle("is-busy", on);
}

/** The line under the fit choice: how the init image will be fitted to width × height. */
export function renderFitLine() {
  const line = byId("init-fit-line");
  if (!line) return;
  const image = state.initImage;
  const w = numberValue("width");
  const h = numberValue("height");
  line.textContent = image ? fitDescription(image.width, image.height, w, h, initFit()) : "";
  const match = byId("init-match");
  if (match) match.disabled = !(image && image.width && image.height);
}

/** Set the fit choice ("cover" or "contain"; anything else leaves it). */
export function setInitFit(value) {
  const radio = document.querySelector('input[name="init_fit"][value="' + CSS.escape(String(value)) + '"]');
  if (radio) radio.checked = true;
  renderFitLine();
}

/** Show the init image (or none): the preview, its size, the strength field. */
export function renderInitImage() {
  const image = state.initImage;
  const on = !!image;
  const preview = byId("init-preview");
  if (preview) {
    preview.hidden = !on;
    if (on) preview.dataset.imageId = image.id;
    else delete preview.dataset.imageId;
  }
  const thumb = byId("init-thumb");
  if (thumb) {
    if (on) {
      const src = image.thumbnail_url || "/api/v1/images/" + encodeURIComponent(image.id) + "/thumbnail";
      if (thumb.getAttribute("src") !== src) thumb.src = src;
      if (image.width && image.height) {
        thumb.width = image.width;
        thumb.height = image.height;
      }
    } else {
      thumb.removeAttribute("src");
    }
  }
  const size = byId("init-size");
  if (size) {
    size.textContent = on && image.width && image.height
      ? image.width + " × " + image.height + (image.kind === "upload" ? " · uploaded" : " · from a result")
      : "";
  }
  const strength = byId("strength-field");
  if (strength) strength.hidden = !on;
  const fit = byId("init-fit");
  if (fit) fit.hidden = !on;
  renderFitLine();
  const title = byId("init-drop-title");
  if (title) title.textContent = on ? "Drop or choose another picture to replace it" : "Drop a picture or choose a file";
  const drop = byId("init-drop");
  if (drop) drop.classList.toggle("has-image", on);
}

/** Start the next task from this image ({id, width?, height?, kind?, thumbnail_url?}), or none. */
export function setInitImage(image) {
  state.initImage = image && image.id ? {
    id: image.id, width: image.width, height: image.height, kind: image.kind,
    thumbnail_url: image.thumbnail_url,
  } : null;
  clearFieldError("init_image");
  renderInitImage();
  // The inpaint canvas takes the new picture (inpaint.js).
  document.dispatchEvent(new CustomEvent("studio:init-image", { detail: state.initImage }));
  scheduleEstimate();
}

export function clearInitImage() {
  uploadSeq++; // an upload still on its way no longer applies
  state.uploading = false;
  setInitStatus("");
  setBusy(false);
  setInitImage(null);
}

/** Decode a picture: createImageBitmap where there is one, else an <img> on a blob: URL. */
function decodeImage(file) {
  const viaImg = () => new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => resolve({ source: img, width: img.naturalWidth, height: img.naturalHeight, done: () => URL.revokeObjectURL(url) });
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error("undecodable")); };
    img.src = url;
  });
  if (typeof window.createImageBitmap === "function") {
    return window.createImageBitmap(file).then((bitmap) => ({
      source: bitmap, width: bitmap.width, height: bitmap.height, done: () => { if (bitmap.close) bitmap.close(); },
    }), viaImg);
  }
  return viaImg();
}

function canvasBlob(canvas, type, quality) {
  return new Promise((resolve) => {
    if (!canvas.toBlob) { resolve(null); return; }
    canvas.toBlob((blob) => resolve(blob), type, quality);
  });
}

const SENT_AS_IS = ["image/png", "image/jpeg", "image/webp"];

/**
 * The picture as it is when it is within the user's pixel limit (config.baseSize.maxPixels:
 * the largest area a task of theirs may have) and of a type the server takes; else scaled
 * down to that limit, shape kept, and compressed: WebP at quality 0.9, or PNG where the
 * browser cannot encode WebP. Resolves to {blob, name}, or null when the browser cannot
 * decode it (the server judges then).
 */
function preparePicture(file) {
  const base = String(file.name || "init").replace(/\.[^.]*$/, "") || "init";
  const maxPixels = config.baseSize.maxPixels;
  return decodeImage(file).then((decoded) => {
    const [w, h] = uploadSize(decoded.width, decoded.height, maxPixels);
    if (w === decoded.width && h === decoded.height && SENT_AS_IS.indexOf(file.type) !== -1) {
      decoded.done();
      return { blob: file, name: file.name || base + "." + file.type.split("/")[1] };
    }
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(decoded.source, 0, 0, w, h);
    decoded.done();
    return canvasBlob(canvas, "image/webp", 0.9).then((blob) => {
      if (blob && blob.type === "image/webp") return { blob, name: base + ".webp" };
      return canvasBlob(canvas, "image/png").then((png) => (png ? { blob: png, name: base + ".png" } : null));
    });
  }, () => null);
}

function uploadMessage(res) {
  const message = res.error && res.error.message;
  if (res.status === 413) return message || "That picture is too large to upload.";
  if (res.status === 415) return message || "That file is not a PNG, JPEG or WebP picture, or it is damaged.";
  if (res.status === 422) return message || "That picture has too many pixels.";
  if (res.status === 401) return "You were signed out; sign in again to upload.";
  return message || "The upload failed. Please try again.";
}

function handleInitFile(file) {
  if (!file) return;
  clearFieldError("init_image");
  const mine = ++uploadSeq;
  state.uploading = true;
  setBusy(true);
  setInitStatus("Preparing the picture…");
  preparePicture(file).then((prepared) => {
    if (mine !== uploadSeq) return null;
    const data = new FormData();
    if (prepared) data.append("file", prepared.blob, prepared.name);
    else data.append("file", file, file.name || "upload"); // undecodable here: let the server say why
    setInitStatus("Uploading…");
    return api("POST", "/api/v1/uploads", data);
  }).then((res) => {
    if (!res || mine !== uploadSeq) return;
    state.uploading = false;
    setBusy(false);
    setInitStatus("");
    if (res.ok && res.data && res.data.id) {
      setInitImage(res.data);
      announce("Init image ready.");
    } else {
      showInitError(uploadMessage(res));
    }
  });
}

function draggingFiles(event) {
  const types = event.dataTransfer && event.dataTransfer.types;
  return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
}

/** Wire the file input, the drop zone, pasting into the panel and the remove button. */
export function initUpload() {
  const input = byId("init-file");
  const drop = byId("init-drop");
  const panel = byId("studio-panel");
  const clear = byId("init-clear");

  if (input) {
    input.addEventListener("change", () => {
      handleInitFile(input.files && input.files[0]);
      input.value = ""; // the same file again fires change again
    });
  }

  if (drop) {
    let dragDepth = 0;
    drop.addEventListener("dragenter", (event) => {
      if (!draggingFiles(event)) return;
      event.preventDefault();
      dragDepth++;
      drop.classList.add("is-dragging");
    });
    drop.addEventListener("dragover", (event) => {
      if (!draggingFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    drop.addEventListener("dragleave", () => {
      dragDepth = Math.max(0, dragDepth - 1);
      if (!dragDepth) drop.classList.remove("is-dragging");
    });
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      dragDepth = 0;
      drop.classList.remove("is-dragging");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) handleInitFile(files[0]);
    });
  }

  // Pasting a picture anywhere in the panel makes it the init image.
  if (panel) {
    panel.addEventListener("paste", (event) => {
      const files = event.clipboardData && event.clipboardData.files;
      if (!files || !files.length) return;
      const file = Array.prototype.find.call(files, (f) => /^image\//.test(f.type));
      if (!file) return;
      event.preventDefault();
      handleInitFile(file);
    });
  }

  if (clear) {
    clear.addEventListener("click", () => {
      clearInitImage();
      if (input) input.focus();
    });
  }
}
