/* Daydream studio — the chosen model's card applied to the panel (cards.js does the
 * working out): the size limits (its step and largest side) and its size presets, the
 * schedulers it offers, the guidance control and the negative prompt where it uses them,
 * the LoRAs of its family (lorapicker.js) and the guides it takes (guidepanel.js). */
import { byId, el } from "../../lib/dom.js";
import { formatNumber } from "../../lib/format.js";
import { cardLimits, cardPresets, fastChoice, fitToLimits, negativeNote, schedulerChoice } from "./cards.js";
import { config } from "./config.js";
import { currentCard, numberValue, setField, syncModelTitle } from "./fields.js";
import { applySize, setSizeHintDefault } from "./form.js";
import { refreshGuides } from "./guidepanel.js";
import { refreshLoras } from "./lorapicker.js";

let applied = null;

/** The id of the model whose card the panel shows now (null before the first). */
export function appliedModel() { return applied; }

function modelName() {
  const select = byId("model");
  const option = select ? select.options[select.selectedIndex] : null;
  return option ? (option.title || option.textContent.trim()) : "this model";
}

function setSizeInputs(lim) {
  ["width", "height"].forEach((id) => {
    [byId(id), byId(id + "-range")].forEach((input) => {
      if (!input) return;
      input.min = String(lim.min);
      input.max = String(lim.max);
      input.step = String(lim.step);
    });
  });
  const step = byId("size-step");
  if (step) step.textContent = String(lim.step);
  setSizeHintDefault("Up to " + lim.max + " px a side, " + formatNumber(lim.maxPixels) + " pixels in all.");
}

function renderPresets(card, lim) {
  const box = byId("size-cards");
  if (!box) return;
  const presets = cardPresets(card, lim);
  box.replaceChildren(...presets.map((preset) => {
    const [w, h] = preset.size;
    const chip = el("button", {
      type: "button", class: "chip", dataset: { cardSize: w + "x" + h },
      "aria-label": w + " by " + h + (preset.adjusted ? ", fitted to your limits" : ""),
      "aria-pressed": "false",
      title: preset.adjusted
        ? preset.wanted[0] + " × " + preset.wanted[1] + " made " + w + " × " + h + " to stay within your limits"
        : "A size this model was trained for",
      text: w + " × " + h,
    });
    chip.addEventListener("click", () => applySize(preset.size, preset.adjusted
      ? "Made " + w + " × " + h + " (not " + preset.wanted[0] + " × " + preset.wanted[1] + ") to stay within " +
        lim.max + " px a side and " + formatNumber(lim.maxPixels) + " pixels."
      : ""));
    return chip;
  }));
  box.hidden = presets.length === 0;
}

function renderSchedulers(card) {
  const select = byId("scheduler");
  if (!select || !Object.keys(config.schedulers).length) return;
  const choice = schedulerChoice(card, select.value, config.schedulers, config.default_scheduler);
  select.replaceChildren(...choice.options.map((key) => el("option", {
    value: key, text: config.schedulers[key] + (key === choice.defaultKey ? " (default)" : ""),
  })));
  select.value = choice.value;
}

function renderGuidanceAndNegative(card) {
  const guidance = byId("guidance-field");
  if (guidance) guidance.hidden = !card.usesGuidance;
  const negative = byId("negative_prompt");
  const note = byId("negative_prompt-note");
  if (negative) negative.disabled = !card.usesNegativePrompt;
  if (note) {
    note.textContent = card.usesNegativePrompt ? "" : negativeNote(card);
    note.hidden = card.usesNegativePrompt;
  }
}

/** The Fast mode box where the model's card allows it: ticked and locked where staff set it
 * on; `wanted` (a reused task's) ticks it where it is the user's choice. */
export function renderFast(card, wanted) {
  const field = byId("fast-field");
  const box = byId("fast");
  const help = byId("fast-help");
  if (!field || !box) return;
  const choice = fastChoice(card, wanted === undefined ? box.checked && !box.disabled : wanted);
  field.hidden = !choice;
  box.checked = !!choice && choice.checked;
  box.disabled = !choice || choice.locked;
  if (help) help.textContent = choice ? choice.help : "";
}

/** Width and height inside the chosen model's limits (each slider takes the new range);
 * true when one of them changed. */
export function fitSizeToModel() {
  const w = numberValue("width");
  const h = numberValue("height");
  const fitted = fitToLimits(w, h, config.size);
  const moved = !!fitted && (fitted[0] !== w || fitted[1] !== h);
  setField("width", fitted ? fitted[0] : w);
  setField("height", fitted ? fitted[1] : h);
  return moved;
}

/**
 * Show the chosen model's card in the panel. The width and height are kept, put inside the
 * new limits where they do not fit. Returns {card, changed: whether a value of the form
 * changed}; the caller runs onFormChanged.
 */
export function applyCard() {
  const card = currentCard();
  const scheduler = byId("scheduler");
  const schedulerBefore = scheduler ? scheduler.value : "";
  const lim = Object.assign(config.size, cardLimits(config.baseSize, card));
  setSizeInputs(lim);
  renderPresets(card, lim);
  renderSchedulers(card);
  renderGuidanceAndNegative(card);
  renderFast(card);
  let changed = scheduler ? scheduler.value !== schedulerBefore : false;
  if (fitSizeToModel()) changed = true;
  if (refreshLoras(card, modelName())) changed = true;
  if (refreshGuides(card)) changed = true;
  syncModelTitle();
  applied = card.id || (byId("model") ? byId("model").value : "");
  return { card, changed };
}
