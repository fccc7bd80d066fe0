/* Daydream studio — the panel's Guides section (issue 25): Control units (a picture chosen
 * or a scribble drawn; guiderows.js builds each row), References (a picture, an IP-Adapter
 * and a weight) and, for a model that edits (FLUX.1 Kontext), the pictures to edit. Each
 * part shows only where the chosen model's card offers it. The rules and what is sent are
 * guides.js's; state.guides holds them; fields.js reads them into the task, form.js asks
 * what is missing before sending, estimate.js counts their cost. */
import { api } from "../../lib/api.js";
import { $, announce, byId, el } from "../../lib/dom.js";
import { config } from "./config.js";
import { clearFieldError, currentCard } from "./fields.js";
import {
  checkGuides, countOr, defaultPreprocessor, DEFAULT_MAX_CONTROL, DEFAULT_MAX_REFERENCES, guidesPayload, imageValue,
  newReference, newUnit, offeredPreprocessors, offers, restoreEditImages, restoreGuides,
} from "./guides.js";
import {
  adapters, controlnets, createReferenceRow, createUnitRow, fillModels, fillPreprocessors, fillReferenceModels, hasImage,
  imageOf, inpainting, panel, preprocessorOptions, readPicture, refillModels, removeButton, thumb, unitChoices,
} from "./guiderows.js";
import { state } from "./state.js";

const MAX_CONTROL = countOr(config.max_control, DEFAULT_MAX_CONTROL);
const MAX_REFERENCES = countOr(config.max_references, DEFAULT_MAX_REFERENCES);

/* ---------- what fields.js and form.js read ---------- */

function offered() { return offers(panel.card || currentCard()); }

/** The task's guide fields ({control?, references?, edit?}) as the panel holds them. */
export function guideFields() {
  return guidesPayload({
    units: state.guides.units, references: state.guides.references, editImages: state.guides.editImages,
    offered: offered(), imageOf, preprocessors: panel.preprocessors,
  });
}

/** How many units, references and pictures to edit the task sends, whether the model
 * gives each picture its own tokens and at what pixels it encodes them (for the cost line:
 * guides.js's guidedCost, cost.js's referenceCost), without reading the drawings. */
export function guideCounts() {
  const on = offered();
  if (on.edit) {
    return { control: 0, references: 0, edit: state.guides.editImages.length, editEach: on.editEach,
      editReferencePixels: on.editReferencePixels };
  }
  return {
    control: on.control ? state.guides.units.filter(hasImage).length : 0,
    references: on.references ? state.guides.references.filter(hasImage).length : 0,
    edit: 0,
  };
}

/** Whether the next task is an edit (the chosen model edits; one whose edits are optional,
 * when it has a picture to edit): fields.js leaves out what an edit refuses. */
export function editing() {
  const on = offered();
  return on.edit && (!on.editOptional || state.guides.editImages.length > 0);
}

/** What the server would refuse, said before sending ({field, message} or null). */
export function checkGuideFields() {
  return checkGuides({
    units: state.guides.units, references: state.guides.references, editImages: state.guides.editImages,
    offered: offered(), hasImage, guides: controlnets(), preprocessors: panel.preprocessors,
  });
}

/* ---------- adding and removing ---------- */

function addUnit(source) {
  if (state.guides.units.length >= MAX_CONTROL) return;
  const list = unitChoices(null).choices; // (the first unit's Union, if it has one)
  const unit = newUnit({
    source, model: list.length ? list[0].id : "",
    preprocessor: defaultPreprocessor(offeredPreprocessors(panel.preprocessors, inpainting()), source),
  });
  state.guides.units.push(unit);
  clearFieldError("control");
  render();
  const row = panel.rows.get(unit.key);
  if (row) row.node.scrollIntoView({ block: "nearest" });
  announce("Control " + state.guides.units.length + " added.");
  panel.changed();
}

function removeUnit(key) {
  state.guides.units = state.guides.units.filter((u) => u.key !== key);
  panel.rows.delete(key);
  clearFieldError("control");
  render();
  refillModels(); // (a new first unit: the others follow its choice)
  announce("The control unit is removed.");
  panel.changed();
}

function addReference() {
  if (state.guides.references.length >= MAX_REFERENCES) return;
  const list = adapters();
  const reference = newReference({ model: list.length ? list[0].id : "" });
  state.guides.references.push(reference);
  clearFieldError("references");
  render();
  announce("Reference " + state.guides.references.length + " added.");
  panel.changed();
}

function removeReference(key) {
  state.guides.references = state.guides.references.filter((r) => r.key !== key);
  panel.rows.delete(key);
  clearFieldError("references");
  render();
  announce("The reference is removed.");
  panel.changed();
}

/* ---------- the pictures of an edit ---------- */

function renderEditImages() {
  const list = byId("edit-list");
  const add = byId("edit-add-label");
  const limit = byId("edit-limit");
  const max = offered().maxEdit || 1;
  if (!list) return;
  list.replaceChildren(...state.guides.editImages.map((image, i) => el("li", { class: "edit-picture", dataset: { imageId: image.id || "" } }, [
    thumb(image, "Picture " + (i + 1) + " to edit"),
    removeButton("Remove picture " + (i + 1), () => {
      state.guides.editImages.splice(i, 1);
      renderEditImages();
      panel.changed();
    }),
  ])));
  list.hidden = !state.guides.editImages.length;
  const full = state.guides.editImages.length >= max;
  if (add) add.hidden = full;
  if (limit) {
    limit.textContent = max > 1 ? "Up to " + max + " pictures: they are put side by side into one for the model."
      : "One picture.";
  }
}

/** Put a picture ({id, thumbnail_url} or {data}) into the edit (the studio cards' Edit). */
export function addEditImage(image) {
  const max = offered().maxEdit || 1;
  if (state.guides.editImages.length >= max) state.guides.editImages.pop();
  state.guides.editImages.push(image);
  clearFieldError("edit");
  renderEditImages();
  panel.changed();
}

/* ---------- the section ---------- */

function render() {
  const section = byId("guides-section");
  const studio = byId("studio-panel");
  const on = offered();
  if (!section) return;
  section.hidden = !(on.control || on.references || on.edit);
  // An edit has no start picture and no hires fix: those sections step aside (css/guides.css).
  if (studio) studio.toggleAttribute("data-edits", on.edit);
  const parts = { "control-part": on.control && !on.edit, "reference-part": on.references && !on.edit, "edit-part": on.edit };
  Object.keys(parts).forEach((id) => { const node = byId(id); if (node) node.hidden = !parts[id]; });

  const unitList = byId("control-list");
  const keysNow = new Set(state.guides.units.map((u) => u.key).concat(state.guides.references.map((r) => r.key)));
  Array.from(panel.rows.keys()).forEach((key) => { if (!keysNow.has(key)) panel.rows.delete(key); });
  if (unitList) {
    unitList.replaceChildren(...state.guides.units.map((u, i) => {
      const row = panel.rows.get(u.key) || createUnitRow(u);
      $(".guide-unit__title", row.node).textContent = "Control " + (i + 1);
      return row.node;
    }));
  }
  const refList = byId("reference-list");
  if (refList) {
    refList.replaceChildren(...state.guides.references.map((r, i) => {
      const row = panel.rows.get(r.key) || createReferenceRow(r);
      $(".guide-unit__title", row.node).textContent = "Reference " + (i + 1);
      return row.node;
    }));
  }
  const noControl = !controlnets().length;
  ["control-add", "control-draw"].forEach((id) => {
    const b = byId(id);
    if (b) b.disabled = noControl || state.guides.units.length >= MAX_CONTROL;
  });
  const refAdd = byId("reference-add");
  if (refAdd) refAdd.disabled = !adapters().length || state.guides.references.length >= MAX_REFERENCES;
  const controlLimit = byId("control-limit");
  if (controlLimit) {
    controlLimit.textContent = noControl ? "No ControlNet is enabled for this model's family."
      : "Up to " + MAX_CONTROL + " a task; each adds half the task's cost.";
  }
  const refLimit = byId("reference-limit");
  if (refLimit) {
    refLimit.textContent = !adapters().length ? "No IP-Adapter is enabled for this model's family."
      : "Up to " + MAX_REFERENCES + " a task; each adds a token a picture.";
  }
  renderEditImages();
}

/** The model changed (models.js): each part shows where its card offers it; units keep a
 * ControlNet of the new family. Returns whether what the task sends changed. */
export function refreshGuides(nextCard) {
  const before = JSON.stringify(guidesPayload({
    units: state.guides.units, references: state.guides.references, editImages: state.guides.editImages,
    offered: offers(panel.card || nextCard), imageOf: (item) => imageValue(item.image),
  }));
  panel.card = nextCard;
  state.guides.units.forEach((u) => { const row = panel.rows.get(u.key); if (row) fillModels(u, row); });
  state.guides.references.forEach((r) => { const row = panel.rows.get(r.key); if (row) fillReferenceModels(r, row); });
  render();
  const after = JSON.stringify(guidesPayload({
    units: state.guides.units, references: state.guides.references, editImages: state.guides.editImages,
    offered: offers(panel.card), imageOf: (item) => imageValue(item.image),
  }));
  return before !== after;
}

/** A task's guides back in the panel (Reuse); `task` without guides clears them. */
export function restoreGuideFields(task) {
  const restored = restoreGuides(task, {
    guides: config.guides, family: currentCard().family, maxControl: MAX_CONTROL, maxReferences: MAX_REFERENCES,
  });
  panel.rows.clear();
  state.guides.units = restored.units;
  state.guides.references = restored.references;
  state.guides.editImages = restoreEditImages(task);
  ["control", "references", "edit"].forEach(clearFieldError);
  render();
  const note = byId("guides-note");
  if (note) {
    note.textContent = restored.dropped.length ? "Left out: " + restored.dropped.join(", ") + " (this model's family has no guide for it)." : "";
    note.hidden = !restored.dropped.length;
  }
}

/** "Reset to defaults": no guides. */
export function resetGuides() { restoreGuideFields(null); }

function loadPreprocessors() {
  return api("GET", "/api/v1/control/preprocessors").then((res) => {
    panel.preprocessors = res.ok && res.data && Array.isArray(res.data.preprocessors) ? res.data.preprocessors : [];
    state.guides.units.forEach((u) => { const row = panel.rows.get(u.key); if (row) fillPreprocessors(u, row); });
    render();
  });
}

/** The preprocessors' names ({id: label}), for the cards. */
export function preprocessorNames() {
  const out = {};
  panel.preprocessors.forEach((p) => { out[p.id] = p.label || p.id; });
  return out;
}

export function initGuides(onChange) {
  panel.changed = onChange || panel.changed;
  panel.removeUnit = removeUnit;
  panel.removeReference = removeReference;
  panel.card = currentCard();
  const actions = {
    "control-add": () => addUnit("upload"), "control-draw": () => addUnit("draw"), "reference-add": addReference,
  };
  Object.keys(actions).forEach((id) => { const b = byId(id); if (b) b.addEventListener("click", actions[id]); });
  const editFile = byId("edit-file");
  if (editFile) {
    editFile.addEventListener("change", () => {
      const chosen = editFile.files && editFile.files[0];
      editFile.value = "";
      if (!chosen) return;
      readPicture(chosen).then((image) => {
        const error = byId("edit-error");
        if (!image) {
          if (error) { error.textContent = "That file is not a picture this browser can read."; error.hidden = false; }
          return;
        }
        addEditImage(image);
      });
    });
  }
  // The start picture's mode decides whether the inpaint preprocessor is offered.
  document.addEventListener("studio:changed", () => {
    state.guides.units.forEach((u) => {
      const row = panel.rows.get(u.key);
      if (row && row.parts.preprocessor.options.length !== preprocessorOptions().length) fillPreprocessors(u, row);
    });
  });
  render();
  loadPreprocessors();
}
