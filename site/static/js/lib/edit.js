/* Daydream — "Edit" for one image (issue 25): a model that edits by instruction (FLUX.1
 * Kontext: a model whose card says `edits`, GET /api/v1/models) changes the picture as the
 * instruction says ("make it winter"); a model that takes several pictures gets more
 * (up to its card's max_references), put side by side into one. The cost is shown before
 * submitting (POST /api/v1/estimate with the task's body); submitting makes a task (POST
 * /api/v1/tasks {prompt, model, edit: {images}}). Used by the studio's cards
 * (pages/studio/timeline.js: editDialog, the card follows the task) and the gallery's
 * lightbox (pages/gallery/editing.js: the form in its details panel). Styles:
 * css/guides.css (.edit-form).
 *
 *   createEditForm({onSubmitted(task), idPrefix}) → {root, show(image), setBusy(on)}
 *   editDialog(image, {onSubmitted(task)})       → a modal dialog with the form; closes on submit
 *   editBody(instruction, model, images)         → the request's body (pure, for the tests)
 *   editingModels(items)                         → the models of GET /models that edit (pure) */
import { api, errorText, newIdempotencyKey } from "./api.js";
import { el } from "./dom.js";
import { ensureStylesheet, formDialog } from "./formdialog.js";
import { plural } from "./format.js";
import { pictureData } from "./pictures.js";

const MAX_PIXELS = 2 * 1024 * 1024; // an added picture is fitted to the model's own size anyway
const ESTIMATE_PROMPT = "edit";

/** The models of GET /api/v1/models' items that edit: [{id, name, max_references}]. */
export function editingModels(items) {
  return (items || []).filter((m) => m && m.edits === true && (m.kind === undefined || m.kind === "model"))
    .map((m) => ({ id: m.id, name: m.name || m.id, max_references: Math.max(1, Number(m.max_references) || 1) }));
}

/** The body of POST /api/v1/tasks for an edit: the instruction is the prompt. */
export function editBody(instruction, model, images) {
  const body = { prompt: String(instruction || "").trim(), edit: { images: (images || []).filter(Boolean) } };
  if (model) body.model = model;
  return body;
}

let models = null; // Promise of editingModels(...), asked for once
function loadModels() {
  if (!models) {
    models = api("GET", "/api/v1/models").then((res) => editingModels(res.ok && res.data && res.data.items));
  }
  return models;
}

export function createEditForm(options) {
  const o = options || {};
  const id = (name) => (o.idPrefix || "edit") + "-" + name;
  let image = null;
  let extra = []; // pictures added: [{data, thumbnail_url}]
  let list = [];
  let seq = 0;
  let busy = false;
  let costOk = false;

  const select = el("select", { id: id("model") });
  const prompt = el("textarea", {
    id: id("prompt"), rows: "2", maxlength: "2000", placeholder: "Make it winter, snow on the roofs",
    "aria-describedby": id("help"),
  });
  const fileInput = el("input", { class: "visually-hidden", id: id("file"), type: "file", accept: "image/png,image/jpeg,image/webp" });
  const addLabel = el("label", { class: "btn btn--tiny btn--ghost guides__file", for: id("file") }, ["Add a picture", fileInput]);
  const pictures = el("div", { class: "edit-form__pictures", id: id("pictures") });
  const cost = el("p", { class: "muted edit-form__cost", id: id("cost"), "aria-live": "polite" });
  const error = el("p", { class: "field-error", id: id("error"), role: "alert", hidden: true });
  const go = el("button", { type: "button", class: "btn btn--small btn--primary", id: id("go"), text: "Edit" });
  const root = el("section", { class: "edit-form", id: id("form"), "aria-labelledby": id("title") }, [
    el("h3", { id: id("title"), text: "Edit" }),
    el("p", { class: "muted", id: id("help"), text: "Say what to change; a model that edits keeps the rest of the picture." }),
    pictures,
    el("div", { class: "field" }, [el("label", { for: id("model"), text: "Model" }), select]),
    el("div", { class: "field" }, [el("label", { for: id("prompt"), text: "Instruction" }), prompt]),
    cost, error, go,
  ]);

  function chosen() { return list.find((m) => m.id === select.value) || list[0] || null; }
  function images() { return [image && image.id].concat(extra.map((p) => p.data)).filter(Boolean); }

  function showError(text) {
    error.textContent = text || "";
    error.hidden = !text;
  }

  function renderPictures() {
    const most = chosen() ? chosen().max_references : 1;
    if (extra.length > most - 1) extra = extra.slice(0, Math.max(0, most - 1));
    const thumbs = [el("img", {
      class: "guide-thumb", src: image ? image.thumbnail_url || "" : "", alt: "The picture to edit", width: 56, height: 56,
    })].concat(extra.map((p, i) => {
      const remove = el("button", { type: "button", class: "icon-btn guide-remove", "aria-label": "Remove picture " + (i + 2), text: "×" });
      remove.addEventListener("click", () => { extra.splice(i, 1); renderPictures(); refreshCost(); });
      return el("span", { class: "edit-picture" }, [el("img", { class: "guide-thumb", src: p.thumbnail_url, alt: "Picture " + (i + 2), width: 56, height: 56 }), remove]);
    }));
    addLabel.hidden = extra.length >= most - 1;
    pictures.replaceChildren(...thumbs, addLabel);
  }

  function refreshCost() {
    if (!image || !chosen()) return;
    const mine = ++seq;
    costOk = false;
    go.disabled = true;
    cost.textContent = "Working out the cost…";
    api("POST", "/api/v1/estimate", editBody(prompt.value.trim() || ESTIMATE_PROMPT, select.value, images())).then((res) => {
      if (mine !== seq) return;
      if (!res.ok || !res.data) {
        cost.textContent = "";
        showError(errorText(res, "This edit cannot be made."));
        return;
      }
      showError("");
      costOk = true;
      go.disabled = busy;
      cost.dataset.cost = String(res.data.cost);
      cost.textContent = "Costs " + plural(res.data.cost, "token", "tokens") +
        (res.data.width && res.data.height ? " · " + res.data.width + " × " + res.data.height : "");
    });
  }

  function setBusy(on) {
    busy = !!on;
    go.disabled = busy || !costOk;
    go.textContent = busy ? "Sending…" : "Edit";
  }

  select.addEventListener("change", () => { renderPictures(); refreshCost(); });
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    pictureData(file, MAX_PIXELS).then((picture) => {
      if (!picture) { showError("That file is not a picture this browser can read."); return; }
      extra.push(picture);
      renderPictures();
      refreshCost();
    });
  });
  go.addEventListener("click", () => {
    if (!image || busy || !costOk) return;
    if (!prompt.value.trim()) {
      showError("Say what to change, such as “make it winter”.");
      prompt.focus();
      return;
    }
    setBusy(true);
    api("POST", "/api/v1/tasks", editBody(prompt.value, select.value, images()),
        { headers: { "Idempotency-Key": newIdempotencyKey() } }).then((res) => {
      setBusy(false);
      if (!res.ok || !res.data) {
        showError(errorText(res, "Could not start the edit."));
        return;
      }
      prompt.value = "";
      if (o.onSubmitted) o.onSubmitted(res.data);
    });
  });
  prompt.addEventListener("input", () => { if (!error.hidden && prompt.value.trim()) showError(""); });

  function show(next) {
    const changedImage = !image || !next || image.id !== next.id;
    image = next;
    root.hidden = !image || ["mask", "control", "reference"].indexOf(image.kind) !== -1 || image.review === "held";
    if (root.hidden || !changedImage) return;
    extra = [];
    showError("");
    loadModels().then((items) => {
      list = items;
      if (!list.length) {
        root.hidden = true; // no model edits here: nothing to offer
        return;
      }
      const kept = select.value;
      select.replaceChildren(...list.map((m) => el("option", { value: m.id, text: m.name })));
      if (list.some((m) => m.id === kept)) select.value = kept;
      renderPictures();
      refreshCost();
    });
  }

  return { root, show, setBusy, available: () => loadModels().then((items) => items.length > 0) };
}

/** The form in a modal dialog (the studio's cards): closes once the task is submitted. */
export function editDialog(image, options) {
  ensureStylesheet("/static/css/guides.css");
  const dialog = formDialog("edit", createEditForm, image, options);
  const prompt = dialog.querySelector("textarea");
  if (prompt) prompt.focus();
  return dialog;
}
