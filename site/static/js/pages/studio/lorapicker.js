/* Daydream studio — the LoRA picker of the panel: the enabled LoRAs of the chosen model's
 * family in a select with "Add", each added one a row with its weight (a number and a
 * slider, -2..2) and "Remove"; at most max_loras. A <lora:name:0.8> tag typed into the
 * prompt shows as a row of its own ("in the prompt", the tag's text), live; the server
 * applies the tag (its weight wins over the same LoRA added here, whose row it replaces).
 * The rules are loras.js's; the chosen LoRAs live in state.loras (readForm sends them). */
import { announce, byId, el } from "../../lib/dom.js";
import { config } from "./config.js";
import { clearFieldError, paintRange } from "./fields.js";
import {
  WEIGHT, addLora, addable, clampWeight, droppedNote, keepAvailable, lorasFor, promptLoras, removeLora, setWeight,
  shownLoras,
} from "./loras.js";
import { state } from "./state.js";

let available = [];
let changed = () => {};
let rowCount = 0;
let pickerError = "";
let tagProblem = "";
let tagsSeen = "";

function setNote(text) {
  const note = byId("lora-note");
  if (!note) return;
  note.textContent = text || "";
  note.hidden = !text;
}

function paintError() {
  const box = byId("loras-error");
  const select = byId("lora-choice");
  const text = pickerError || tagProblem;
  if (box) { box.textContent = text || ""; box.hidden = !text; }
  if (select) {
    if (pickerError) select.setAttribute("aria-invalid", "true"); else select.removeAttribute("aria-invalid");
  }
}

function setError(text) {
  pickerError = text || "";
  paintError();
}

/* The prompt's LoRA tags, read as the server reads them. */
function promptTags() {
  const prompt = byId("prompt");
  return promptLoras(prompt ? prompt.value : "", available);
}

/* A tag typed into the prompt: its LoRA's name and the tag as typed (edited there, not here). */
function tagRow(lora) {
  return el("li", { class: "lora-row lora-row--tag", dataset: { loraId: lora.id, from: "prompt" } }, [
    el("div", { class: "lora-row__head" }, [
      el("span", { class: "lora-row__name", text: lora.name }),
      el("span", { class: "field-hint lora-row__from", text: "in the prompt, weight " + lora.weight }),
    ]),
    el("code", { class: "lora-row__tag", text: lora.tag }),
  ]);
}

function weightRow(lora) {
  rowCount += 1;
  const id = "lora-weight-" + rowCount;
  const number = el("input", {
    class: "num lora-row__weight", id, type: "number", inputmode: "decimal",
    min: WEIGHT.min, max: WEIGHT.max, step: WEIGHT.step, value: lora.weight,
    "aria-label": "Weight of " + lora.name, "aria-describedby": "lora-help",
  });
  const range = el("input", {
    class: "range lora-row__range", type: "range", min: WEIGHT.min, max: WEIGHT.max, step: WEIGHT.step,
    value: lora.weight, "aria-label": "Weight of " + lora.name + " slider", tabindex: "-1",
  });
  const remove = el("button", {
    type: "button", class: "icon-btn lora-row__remove", "aria-label": "Remove " + lora.name, title: "Remove",
  }, [el("span", { "aria-hidden": "true", text: "×" })]);
  paintRange(range);

  const take = (value, rewrite) => {
    const weight = clampWeight(value);
    state.loras = setWeight(state.loras, lora.id, weight);
    range.value = String(weight);
    paintRange(range);
    if (rewrite) number.value = String(weight);
    changed();
  };
  number.addEventListener("input", () => { if (String(number.value).trim() !== "") take(number.value, false); });
  number.addEventListener("change", () => take(number.value, true));
  range.addEventListener("input", () => take(range.value, true));
  remove.addEventListener("click", () => {
    state.loras = removeLora(state.loras, lora.id);
    render();
    announce(lora.name + " removed.");
    const select = byId("lora-choice");
    if (select && !select.disabled) select.focus();
    changed();
  });

  return el("li", { class: "lora-row", dataset: { loraId: lora.id } }, [
    el("div", { class: "lora-row__head" }, [
      el("label", { class: "lora-row__name", for: id, text: lora.name }),
      number,
      remove,
    ]),
    range,
  ]);
}

function render() {
  const section = byId("lora-section");
  const select = byId("lora-choice");
  const add = byId("lora-add");
  const list = byId("lora-list");
  const limit = byId("lora-limit");
  if (!section || !select || !list) return;
  const tags = promptTags();
  const shown = shownLoras(state.loras, tags.list, config.maxLoras);
  tagsSeen = JSON.stringify(tags);
  tagProblem = tags.problems[0] || (shown.over ? "At most " + config.maxLoras + " LoRA" +
    (config.maxLoras === 1 ? "" : "s") + " a task, with those in the prompt." : "");
  paintError();
  section.hidden = available.length === 0 && !tags.list.length && !tags.problems.length;
  const left = addable(state.loras.concat(tags.list), available);
  const full = shown.count >= config.maxLoras;
  const previous = select.value;
  select.replaceChildren(...(left.length
    ? left.map((l) => el("option", { value: l.id, text: l.name || l.id }))
    : [el("option", { value: "", text: available.length ? "All of them are added" : "No LoRA fits this model" })]));
  if (left.some((l) => l.id === previous)) select.value = previous;
  select.disabled = full || left.length === 0;
  if (add) add.disabled = select.disabled;
  if (limit) {
    limit.textContent = full
      ? "That is the most: " + config.maxLoras + " LoRA" + (config.maxLoras === 1 ? "" : "s") + " a task."
      : "Up to " + config.maxLoras + " LoRA" + (config.maxLoras === 1 ? "" : "s") + " a task, each weighted from " +
        WEIGHT.min + " to " + WEIGHT.max + ".";
  }
  list.replaceChildren(...shown.picked.map(weightRow), ...shown.tagged.map(tagRow));
  list.hidden = shown.count === 0;
}

/* The prompt changed: redraw the list when its tags did. */
function promptChanged() {
  if (JSON.stringify(promptTags()) !== tagsSeen) render();
}

/** The model changed: its family's LoRAs are offered, the chosen ones of another family
 * dropped (with a note). Returns whether the chosen ones changed. */
export function refreshLoras(card, modelName) {
  available = lorasFor(config.loras, card.family);
  const before = state.loras.length;
  const kept = keepAvailable(state.loras, available, config.maxLoras);
  state.loras = kept.list;
  setNote(droppedNote(kept.dropped.concat(kept.over), modelName));
  setError("");
  render();
  return state.loras.length !== before;
}

/** Put LoRAs back ({id, name?, weight}: a kept panel, a task); those the chosen model's
 * family does not offer are left out, with a note naming them. */
export function setLoras(loras, modelName) {
  const kept = keepAvailable(loras || [], available, config.maxLoras);
  state.loras = kept.list;
  setNote(droppedNote(kept.dropped.concat(kept.over), modelName));
  setError("");
  render();
}

export function initLoraPicker(onChange) {
  changed = onChange || changed;
  const add = byId("lora-add");
  const select = byId("lora-choice");
  if (add && select) {
    add.addEventListener("click", () => {
      const result = addLora(state.loras, select.value, available, config.maxLoras);
      setError(result.error);
      if (result.error) return;
      state.loras = result.list;
      setNote("");
      clearFieldError("loras");
      const added = result.list[result.list.length - 1];
      render();
      announce(added.name + " added, weight " + added.weight + ".");
      const row = byId("lora-list").lastElementChild;
      const weight = row ? row.querySelector(".lora-row__weight") : null;
      if (weight) weight.focus();
      changed();
    });
    // Enter in the select adds, as the button does.
    select.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); add.click(); }
    });
  }
  const prompt = byId("prompt");
  if (prompt) {
    prompt.addEventListener("input", promptChanged);
    prompt.addEventListener("change", promptChanged);
  }
  render();
  // A prompt put back without an input event (the kept panel, set while the page starts).
  setTimeout(promptChanged, 0);
}
