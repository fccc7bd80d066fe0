/* Daydream studio — the timeline: one card per task of the store, newest first, rendered
 * again whenever the store changes it. Card actions (cancel, reuse) are passed in. */
import { $, $all, announce, byId, el } from "../../lib/dom.js";
import { formatCreated, formatDuration, isNumber, parseTime, plural, shorten } from "../../lib/format.js";
import { editDialog } from "../../lib/edit.js";
import { guideLines } from "../../lib/guidewords.js";
import { upscaleDialog } from "../../lib/upscale.js";
import { config } from "./config.js";
import { cleanOutpaint, taskMode } from "./editing.js";
import { cardEta } from "./eta.js";
import { preprocessorNames } from "./guidepanel.js";
import { lorasText } from "./loras.js";
import { STATE_LABELS, currentSample, isFinal, sampleLabel } from "./merge.js";
import { state } from "./state.js";
import { store } from "./store.js";

let actions = { cancel: () => {}, reuse: () => {} };
let loadedOnce = false;

function taskList() { return byId("task-list"); }

/** Set a node's text, hidden when there is none. */
function setText(node, text) {
  if (!node) return;
  const value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
  node.hidden = value === "";
}

export function cardFor(id) {
  const list = taskList();
  if (!list) return null;
  return Array.from(list.children).find((card) => card.dataset.taskId === id) || null;
}

/** Insert a new card, newest first by created_at. */
function placeCard(card, task, top) {
  const list = taskList();
  const created = parseTime(task.created_at);
  if (top || created === null) {
    list.insertBefore(card, list.firstChild);
    return;
  }
  const later = Array.from(list.children).find((other) => {
    const known = store.get(other.dataset.taskId);
    const otherCreated = known ? parseTime(known.created_at) : null;
    return otherCreated !== null && otherCreated < created;
  });
  if (later) list.insertBefore(card, later);
  else list.appendChild(card);
}

/** Build the skeleton of a card; updateCard() fills it in. */
function createCard(task) {
  const promptId = "task-" + task.id + "-prompt";
  const card = el("article", {
    class: "task",
    "aria-labelledby": promptId,
    dataset: { taskId: task.id, state: task.state || "queued" },
  }, [
    el("header", { class: "task__head" }, [
      el("span", { class: "task-state" }, [
        el("span", { class: "task-spinner", "aria-hidden": "true", hidden: true }),
        el("span", { class: "task-state__label" }),
      ]),
      el("time", { class: "task__when task-created" }),
      el("div", { class: "task__actions" }, [
        el("button", { type: "button", class: "btn btn--tiny btn--danger task-cancel", hidden: true, text: "Cancel" }),
        el("button", { type: "button", class: "btn btn--tiny btn--ghost task-reuse", text: "Reuse settings",
                       "aria-label": "Reuse these settings in the panel" }),
        el("a", { class: "btn btn--tiny btn--ghost task-archive", hidden: true, download: "", text: "Download ZIP" }),
      ]),
    ]),
    el("p", { class: "task__prompt task-prompt", id: promptId }),
    el("p", { class: "task__negative task-negative", hidden: true }),
    el("ul", { class: "task__meta", "aria-label": "Settings" }, [
      el("li", { class: "task-size" }),
      el("li", { class: "task-steps" }),
      el("li", { class: "task-guidance" }),
      el("li", { class: "task-scheduler" }),
      el("li", { class: "task-model", hidden: true }),
      el("li", { class: "task-loras", hidden: true }),
      el("li", { class: "task-seed" }),
      el("li", { class: "task-init", hidden: true }),
      el("li", { class: "task-source", hidden: true }),
      el("li", { class: "task-cost", hidden: true }),
    ]),
    el("ul", { class: "task-guides", "aria-label": "Guides", hidden: true }),
    el("div", { class: "task__status" }, [
      el("p", { class: "task__status-text" }, [
        el("span", { class: "task-position", hidden: true }),
        el("span", { class: "task-sample", hidden: true }),
        el("span", { class: "task-step", hidden: true }),
        el("span", { class: "task-eta", hidden: true }),
      ]),
      el("progress", { class: "task-progress", max: "1", value: "0", "aria-label": "Progress" }),
    ]),
    el("div", { class: "task-images" }),
    el("p", { class: "task-error", role: "alert", hidden: true }),
    el("p", { class: "task-refund", hidden: true }),
    el("p", { class: "task-message", hidden: true }),
    el("div", { class: "task__footer" }, [
      el("span", { class: "task-duration", hidden: true }),
    ]),
  ]);

  $(".task-cancel", card).addEventListener("click", () => actions.cancel(card.dataset.taskId));
  $(".task-reuse", card).addEventListener("click", () => {
    const current = store.get(card.dataset.taskId);
    if (current) actions.reuse(current);
  });
  // Per-image actions (the figures come and go as images arrive).
  $(".task-images", card).addEventListener("click", (event) => {
    const button = event.target.closest(".image-variant, .image-reuse, .image-mask, .image-upscale, .image-edit");
    if (!button) return;
    const figure = button.closest(".task-figure");
    if (button.classList.contains("image-mask")) {
      const shown = button.getAttribute("aria-pressed") !== "true";
      button.setAttribute("aria-pressed", shown ? "true" : "false");
      if (figure) figure.classList.toggle("hides-mask", !shown);
      return;
    }
    const current = store.get(card.dataset.taskId);
    if (!figure || !current) return;
    const image = (current.images || []).find((img) => img.id === figure.dataset.imageId);
    if (!image) return;
    const seed = isNumber(image.seed) ? image.seed : current.seed;
    if (button.classList.contains("image-edit")) {
      // lib/edit.js's dialog: a model that edits changes this picture as told.
      editDialog(image, { onSubmitted: (task) => {
        store.upsert(task, { top: true });
        announce("Edit queued: " + shorten(task.prompt, 80));
      } });
    } else if (button.classList.contains("image-upscale")) {
      // lib/upscale.js's dialog; the new task's card follows it (the store).
      upscaleDialog(image, { onSubmitted: (task) => {
        store.upsert(task);
        announce("Upscale ×" + (task.upscale ? task.upscale.scale : "") + " queued.");
      } });
    } else if (button.classList.contains("image-variant")) {
      actions.reuse(current, { seed, init: image });
      announce("Variant: the panel starts from this image with seed " + seed + ".");
    } else {
      actions.reuse(current, { seed, init: null });
      announce("Settings of this image are in the panel.");
    }
  });
  return card;
}

/** Whether the task's model takes guidance (its card: FLUX.1 schnell does not). */
function usesGuidance(modelId) {
  const model = config.models.find((m) => m.id === modelId);
  return !model || model.uses_guidance !== false;
}

function updateCard(card, task) {
  const taskState = task.state || "queued";
  const finished = isFinal(taskState);
  card.dataset.state = taskState;

  // Header: state badge, created time, actions.
  setText($(".task-state__label", card), STATE_LABELS[taskState] || taskState);
  $(".task-spinner", card).hidden = taskState !== "running";
  const when = $(".task-created", card);
  const created = formatCreated(task.created_at);
  if (task.created_at) when.setAttribute("datetime", task.created_at);
  when.title = created.full;
  setText(when, created.short);

  const cancel = $(".task-cancel", card);
  cancel.hidden = !(taskState === "queued" || taskState === "running");
  // Its name stays "Cancel" (what people say and click); what it does is the hint.
  cancel.title = taskState === "running" ? "Stop this task and get its tokens back" : "Cancel this task and get its tokens back";
  const images = Array.isArray(task.images) ? task.images : [];
  const archive = $(".task-archive", card);
  // (Images held for review are left out of the ZIP: with only those, there is nothing to download.)
  archive.hidden = !(taskState === "done" && images.some((image) => image.review !== "held"));
  archive.href = "/api/v1/tasks/" + encodeURIComponent(task.id) + "/archive";
  archive.setAttribute("aria-label", "Download this task's images as a ZIP archive");

  // Prompt and settings.
  setText($(".task-prompt", card), task.prompt || "");
  const negative = $(".task-negative", card);
  if (task.negative_prompt) {
    negative.replaceChildren(el("b", { text: "Avoid: " }), document.createTextNode(task.negative_prompt));
    negative.hidden = false;
  } else {
    negative.hidden = true;
  }
  let size = task.width && task.height ? task.width + " × " + task.height : "";
  if (size && task.samples > 1) size += " · " + task.samples + " images";
  setText($(".task-size", card), size);
  // (An upscale's steps are its refining pass's: none without one.)
  setText($(".task-steps", card), typeof task.steps === "number" && !(task.upscale && !task.upscale.refine)
    ? plural(task.steps, "step", "steps") : "");
  setText($(".task-guidance", card), typeof task.guidance === "number" && usesGuidance(task.model) ? "Guidance " + task.guidance : "");
  setText($(".task-scheduler", card), task.scheduler ? (config.schedulers[task.scheduler] || task.scheduler) : "");
  setText($(".task-model", card), task.model && config.models.length > 1 ? (config.modelNames[task.model] || task.model) : "");
  setText($(".task-loras", card), Array.isArray(task.loras) && task.loras.length ? (task.loras.length > 1 ? "LoRAs " : "LoRA ") + lorasText(task.loras) : "");
  setText($(".task-seed", card), task.seed === null || task.seed === undefined ? "Seed random" : "Seed " + task.seed);
  const mode = taskMode(task);
  const edit = task.edit && Array.isArray(task.edit.images) ? task.edit.images : null;
  setText($(".task-init", card), task.upscale ? upscaleLabel(task.upscale) : edit
    ? (edit.length > 1 ? "Edit of " + edit.length + " pictures" : "Edit")
    : task.init_image
    ? (mode === "inpaint" ? "Inpaint" : mode === "outpaint" ? "Outpaint" : "From an image") +
      (isNumber(task.strength) ? " · strength " + task.strength : "")
    : "");
  setText($(".task-cost", card), typeof task.cost === "number" && task.cost > 0 ? plural(task.cost, "token", "tokens") : "");
  // An upscale: "Upscaled from" the image it was made from (in the gallery).
  const source = $(".task-source", card);
  const sourceId = task.upscale && task.upscale.image;
  if (sourceId && source.dataset.imageId !== sourceId) {
    source.dataset.imageId = sourceId;
    source.replaceChildren("Upscaled from ", el("a", { href: "/images/" + encodeURIComponent(sourceId), text: "the original" }));
  }
  source.hidden = !sourceId;
  renderGuides($(".task-guides", card), task);

  // Status: queue position, image n of N, steps, time left, progress bar (over all samples).
  const status = $(".task__status", card);
  status.hidden = finished;
  if (!finished) {
    const samples = Math.max(1, task.samples || 1);
    const progress = task.progress || {};
    const total = progress.total || (task.steps || 1) * samples;
    const step = Math.min(progress.step || 0, total);
    const bar = $(".task-progress", card);
    bar.max = total;
    bar.value = taskState === "running" ? step : 0;
    bar.setAttribute("aria-valuetext", taskState === "running" ? "step " + step + " of " + total : "waiting");

    const position = task.position;
    setText($(".task-position", card), taskState === "queued"
      ? (typeof position === "number" ? "Position " + position + " in the queue" : "Waiting in the queue")
      : "");
    setText($(".task-sample", card), taskState === "running" ? sampleLabel(task) : "");
    setText($(".task-step", card), taskState === "running" ? "step " + step + " / " + total : "");
    const eta = $(".task-eta", card);
    setText(eta, cardEta(task));
    eta.dataset.etaS = taskState === "running" && isNumber(task.eta_s) ? String(task.eta_s) : "";
  }

  renderImages(card, task, images);

  // Failure, refund, duration.
  setText($(".task-error", card), taskState === "failed" ? (task.error || "This task failed.") : "");
  let refund = "";
  if (task.refunded && (taskState === "failed" || taskState === "canceled")) {
    refund = typeof task.cost === "number" && task.cost > 0
      ? (task.cost === 1 ? "Your 1 token was refunded." : "Your " + task.cost + " tokens were refunded.")
      : "Your tokens were refunded.";
  }
  // A done task's note (the image check withheld an image, staff removed one), or a
  // canceled one's that kept some of its images (the others' share refunded).
  if ((taskState === "done" || taskState === "canceled") && task.error) refund = task.error;
  setText($(".task-refund", card), refund);
  const duration = finished && typeof task.duration_s === "number"
    ? (taskState === "done" ? "Took " : "Ran for ") + formatDuration(task.duration_s)
    : "";
  setText($(".task-duration", card), duration);
}

/** The names of the guide models and models ({id: name}), for the guides' lines. */
function guideNames() {
  const names = Object.assign({}, config.modelNames);
  (config.guides || []).forEach((g) => { names[g.id] = g.name || g.id; });
  return names;
}

function smallPicture(id, alt) {
  return el("img", { src: "/api/v1/images/" + encodeURIComponent(id) + "/thumbnail", alt, width: 28, height: 28,
                     loading: "lazy", decoding: "async" });
}

/** A task's guides under its settings: each control unit and reference (its picture, what
 * it does), and the pictures an edit started from (links to them in the gallery). */
function renderGuides(list, task) {
  const control = Array.isArray(task.control) ? task.control : [];
  const references = Array.isArray(task.references) ? task.references : [];
  const edit = task.edit && Array.isArray(task.edit.images) ? task.edit.images : [];
  const signature = JSON.stringify([control, references, edit, Object.keys(preprocessorNames()).length]);
  if (list.dataset.signature === signature) return;
  list.dataset.signature = signature;
  const lines = guideLines(task, guideNames(), preprocessorNames());
  const items = lines.map(([label, text], i) => {
    const raw = i < control.length ? control[i] : references[i - control.length];
    return el("li", { class: i < control.length ? "task-guide task-guide--control" : "task-guide task-guide--reference" }, [
      raw && raw.image ? smallPicture(raw.image, label + "'s picture") : null,
      el("b", { text: label + ":" }), el("span", { text: text }),
    ]);
  });
  if (edit.length) {
    items.push(el("li", { class: "task-guide task-guide--edit" }, [
      el("b", { text: "Edited:" }),
      ...edit.map((id, i) => el("a", { href: "/images/" + encodeURIComponent(id), title: "The picture it edited, in your images" },
        [smallPicture(id, edit.length > 1 ? "Picture " + (i + 1) + " it edited" : "The picture it edited")])),
    ]));
  }
  list.replaceChildren(...items);
  list.hidden = items.length === 0;
}

/** "Upscale ×2 · Lanczos · refined 0.3" (an upscale task's card). */
function upscaleLabel(upscale) {
  const names = { lanczos: "Lanczos", nearest: "Nearest" };
  const name = names[upscale.upscaler] || (config.modelNames && config.modelNames[upscale.upscaler]) || upscale.upscaler;
  return "Upscale ×" + Number(upscale.scale).toLocaleString("en", { maximumFractionDigits: 2 }) + " · " + name +
    (upscale.refine ? " · refined " + upscale.refine.strength : "");
}

/** What an inpaint or outpaint changed, over its result: the mask (fitted to the result as
 * the picture was, init_fit), or a frame around the picture an outpaint extended. */
function editOverlay(task) {
  const mode = taskMode(task);
  if (mode === "inpaint" && task.mask) {
    // A tint shown through the mask's white (CSS mask-mode: luminance, inpaint.css).
    const tint = el("span", {
      class: "task-mask", "aria-hidden": "true",
      dataset: { fit: task.init_fit === "contain" ? "contain" : "cover", maskId: task.mask },
    });
    tint.style.maskImage = 'url("/api/v1/images/' + encodeURIComponent(task.mask) + '/full")';
    return tint;
  }
  if (mode === "outpaint" && task.width && task.height) {
    const o = cleanOutpaint(task.inpaint.outpaint);
    const frame = el("span", { class: "task-outpaint", "aria-hidden": "true" });
    frame.style.left = (100 * o.left / task.width) + "%";
    frame.style.top = (100 * o.top / task.height) + "%";
    frame.style.right = (100 * o.right / task.width) + "%";
    frame.style.bottom = (100 * o.bottom / task.height) + "%";
    return frame;
  }
  return null;
}

/** Whether a model that edits is offered (its card's `edits`): the figures' Edit button. */
function canEdit() {
  return config.models.some((m) => m.edits === true);
}

function createFigure(task, image, i, count) {
  const w = image.width || task.width;
  const h = image.height || task.height;
  const n = i + 1;
  const label = "Image " + n + " of " + count + ": " + shorten(task.prompt, 120);
  const overlay = editOverlay(task);
  return el("figure", {
    class: "task-figure",
    dataset: { slot: "img:" + image.id, imageId: image.id, seed: isNumber(image.seed) ? String(image.seed) : "" },
  }, [
    el("a", {
      class: "task-figure__link", href: image.url, target: "_blank", rel: "noopener",
      "aria-label": "Open image " + n + " full size in a new tab",
    }, [
      el("img", {
        class: "task-image", src: image.thumbnail_url, width: w, height: h,
        loading: "lazy", decoding: "async", alt: label,
      }),
      overlay,
    ]),
    el("figcaption", { class: "task-figure__actions" }, [
      overlay && el("button", {
        type: "button", class: "btn btn--tiny btn--ghost image-mask", text: "Mask", "aria-pressed": "true",
        "aria-label": "Show what was " + (overlay.classList.contains("task-mask") ? "painted over (the mask)" : "added (outpaint)") +
          " on image " + n,
        title: "Show or hide the mask over the image",
      }),
      el("button", {
        type: "button", class: "btn btn--tiny btn--ghost image-variant", text: "Variant",
        "aria-label": "Make a variant of image " + n + (isNumber(image.seed) ? " (seed " + image.seed + ")" : ""),
        title: "Start from this image, with its seed",
      }),
      canEdit() && el("button", {
        type: "button", class: "btn btn--tiny btn--ghost image-edit", text: "Edit",
        "aria-label": "Edit image " + n, title: "Change this picture as you say (a model that edits)",
      }),
      el("button", {
        type: "button", class: "btn btn--tiny btn--ghost image-upscale", text: "Upscale",
        "aria-label": "Upscale image " + n, title: "Make this image bigger (×2 or ×4)",
      }),
      el("button", {
        type: "button", class: "btn btn--tiny btn--ghost image-reuse", text: "Reuse settings",
        "aria-label": "Reuse the settings of image " + n,
        title: "Put these settings and this image's seed in the panel",
      }),
    ]),
  ]);
}

/** An image the image check held: a card without the picture until staff release it. */
function createHeldFigure(task, image, i, count) {
  const box = el("div", {
    class: "task-held", role: "img",
    "aria-label": "Image " + (i + 1) + " of " + count + " is held for review",
  }, [el("span", { class: "task-held__label", text: "Held for review" })]);
  const w = image.width || task.width;
  const h = image.height || task.height;
  if (w && h) box.style.aspectRatio = w + " / " + h;
  return el("figure", { class: "task-figure task-figure--held", dataset: { slot: "held:" + image.id, imageId: image.id } }, [
    box,
    el("figcaption", { class: "task-held__note", text: "The image check held this image; staff will release or remove it." }),
  ]);
}

function createPlaceholder(task, i, count) {
  const ph = el("div", {
    class: "task-placeholder", role: "img",
    "aria-label": "Image " + (i + 1) + " of " + count + " is being made",
    dataset: { slot: "ph:" + i },
  });
  if (task.width && task.height) ph.style.aspectRatio = task.width + " / " + task.height;
  return ph;
}

/**
 * One slot per sample: a finished image (with its actions) or, while the task is not
 * finished, a placeholder sized like the result. Images replace placeholders one by one
 * as they arrive; the live preview goes into the placeholder of the sample being made.
 */
function renderImages(card, task, images) {
  const grid = $(".task-images", card);
  const finished = isFinal(task.state);
  const samples = Math.max(1, task.samples || 1);
  const count = finished ? images.length : Math.max(samples, images.length);
  const slots = [];
  for (let i = 0; i < count; i++) slots.push(images[i] ? (images[i].review === "held" ? "held:" : "img:") + images[i].id : "ph:" + i);

  const signature = slots.join(",") + "|" + task.width + "x" + task.height;
  if (grid.dataset.signature !== signature) {
    grid.dataset.signature = signature;
    const existing = {};
    Array.from(grid.children).forEach((child) => { existing[child.dataset.slot] = child; });
    const nodes = slots.map((slot, i) => {
      const node = existing[slot];
      if (node && slot.indexOf("ph:") === 0 && task.width && task.height) {
        node.style.aspectRatio = task.width + " / " + task.height;
      }
      if (node) return node;
      if (slot.indexOf("held:") === 0) return createHeldFigure(task, images[i], i, count);
      return slot.indexOf("img:") === 0 ? createFigure(task, images[i], i, count) : createPlaceholder(task, i, count);
    });
    grid.replaceChildren(...nodes);
    grid.dataset.count = String(count);
    grid.hidden = count === 0;
  }

  // Live preview: into the placeholder of the sample being rendered.
  const placeholders = $all(".task-placeholder", grid);
  const showPreview = !finished && task.state === "running" && state.settings.previews !== false && !!task._preview;
  let target = null;
  if (showPreview) {
    const sample = currentSample(task);
    target = sample !== null ? grid.querySelector('[data-slot="ph:' + sample + '"]') : null;
    if (!target) target = placeholders[0] || null;
  }
  placeholders.forEach((ph) => {
    let preview = ph.querySelector(".task-preview");
    if (ph === target) {
      if (!preview) {
        preview = el("img", { class: "task-preview", alt: "" });
        ph.appendChild(preview);
      }
      if (preview.getAttribute("src") !== task._preview) preview.src = task._preview;
      ph.classList.add("has-preview");
    } else if (preview && (!showPreview || !state.settings.previews || finished)) {
      // Keep the last look of an earlier sample until its image arrives; drop previews otherwise.
      preview.remove();
      ph.classList.remove("has-preview");
    }
  });
}

/** Render one task into its card (creating it when new). Safe to call often. */
export function renderTask(task, options) {
  if (!taskList()) return;
  let card = cardFor(task.id);
  if (!card) {
    card = createCard(task);
    placeCard(card, task, options && options.top);
  }
  updateCard(card, task);
  updateEmptyState();
}

export function rerenderAll() {
  store.forEach((task) => renderTask(task, {}));
}

export function updateEmptyState() {
  const list = taskList();
  const hasCards = !!(list && list.querySelector(".task"));
  const empty = byId("timeline-empty");
  const loading = byId("timeline-loading");
  if (empty) empty.hidden = hasCards;
  if (loading) loading.hidden = loadedOnce || hasCards;
}

/** The task list has been loaded once: no more "Loading your tasks…". */
export function markLoaded() {
  loadedOnce = true;
  updateEmptyState();
}

export function showCardMessage(id, message) {
  const card = cardFor(id);
  if (card) setText($(".task-message", card), message);
}

export function showTimelineAlert(message, href, linkText) {
  const alert = byId("timeline-alert");
  if (!alert) return;
  alert.textContent = message;
  if (href) alert.appendChild(el("a", { href, text: linkText }));
  alert.hidden = false;
}

export function hideTimelineAlert() {
  const alert = byId("timeline-alert");
  if (alert) alert.hidden = true;
}

/** Render the store's changes; onCancel(id) and onReuse(task, options) are the cards' actions. */
export function initTimeline({ onCancel, onReuse }) {
  actions = { cancel: onCancel, reuse: onReuse };
  store.subscribe((task, before, options) => {
    renderTask(task, options);
    if (before && before.state !== task.state && isFinal(task.state)) {
      announce(STATE_LABELS[task.state] + ": " + shorten(task.prompt, 80));
    }
  });
}
