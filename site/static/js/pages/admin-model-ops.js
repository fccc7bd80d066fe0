/* Daydream — Admin → Models: convert a single-file model into a diffusers folder, merge two
 * or three models of one family (the "Convert and merge" forms, and a "Convert to
 * diffusers" button on each single-file model's row of the models table).
 *
 * POST /api/v1/admin/models/convert  {model, destination, dtype}                       -> 202 job
 * POST /api/v1/admin/models/merge    {models: [a, b, c?], method, alpha, destination, dtype} -> 202 job
 * dtype: "source" (the source's precision; a merge: A's), "fp16", "bf16" or "fp32".
 * GET  /api/v1/admin/model-jobs/{id}  -> job {state, options: {stage}, done_bytes, total_bytes,
 *                                        error, model_id}: followed here until it ends
 * The models come from the table admin-models.js draws (its rows' data-* attributes); this
 * module watches the table and adds its buttons, so the two scripts stay apart. A 422
 * names the field: its message goes under that input.
 */
import { api, errorText } from "../lib/api.js";
import { $all, byId, el } from "../lib/dom.js";

const tbody = byId("models-body");
const convertForm = byId("convert-form");
const mergeForm = byId("merge-form");
const convertSelect = byId("convert-model");
const methodSelect = byId("merge-method");
const cField = byId("merge-c-field");
const alphaInput = byId("merge-alpha");
const alphaValue = byId("merge-alpha-value");
const selects = [byId("merge-a"), byId("merge-b"), byId("merge-c")];
const UNUSABLE = ["error", "unsupported", "missing"];
const FOLLOW_MS = 1000;

/** The models of the table: [{id, name, family, familyLabel, format, usable}]. */
function tableModels() {
  return $all("tr", tbody).filter((row) => row.dataset.kind === "model").map((row) => {
    const name = row.querySelector(".model-name");
    const family = row.querySelector(".model-family");
    return {
      id: row.dataset.modelId, name: name ? name.textContent : row.dataset.modelId,
      family: row.dataset.family, familyLabel: family ? family.textContent : row.dataset.family,
      format: row.dataset.format, usable: !UNUSABLE.includes(row.dataset.state) && !!row.dataset.family,
      row,
    };
  });
}

function fillSelect(select, items, optional) {
  const kept = select.value;
  select.replaceChildren(...(optional ? [el("option", { value: "", text: "—" })] : []),
    ...items.map((m) => el("option", { value: m.id, text: m.name + " (" + m.familyLabel + ")" })));
  if (items.some((m) => m.id === kept)) select.value = kept;
}

function suggest(name) {
  return String(name).toLowerCase().replace(/[^a-z0-9._+-]+/g, "-").replace(/^[-.]+|-+$/g, "").slice(0, 80) || "model";
}

function pickForConvert(model) {
  convertSelect.value = model.id;
  const destination = byId("convert-destination");
  if (!destination.value) destination.value = "converted/" + suggest(model.name);
  convertForm.scrollIntoView({ block: "nearest", behavior: "smooth" });
  destination.focus();
}

/** The table was drawn again: the forms' lists and the rows' convert buttons follow it. */
function sync() {
  const models = tableModels().filter((m) => m.usable);
  const singles = models.filter((m) => m.format === "single_file");
  fillSelect(convertSelect, singles, false);
  byId("convert-start").disabled = !singles.length;
  selects.forEach((select, i) => fillSelect(select, models, i === 2));
  singles.forEach((model) => {
    const cell = model.row.querySelector(".model-cell");
    if (!cell || cell.querySelector(".model-convert")) return;
    const button = el("button", {
      type: "button", class: "btn btn--ghost btn--small model-convert", text: "Convert to diffusers",
      "aria-label": "Convert " + model.name + " to a diffusers folder",
    });
    button.addEventListener("click", () => pickForConvert(model));
    cell.appendChild(button);
  });
}

function clearFieldErrors(form) {
  $all(".field-error", form).forEach((p) => { p.hidden = true; p.textContent = ""; });
  $all("[aria-invalid]", form).forEach((input) => input.removeAttribute("aria-invalid"));
}

/** An API error under the input it names (data-field), else in the form's status line. */
function showFieldError(form, error, status) {
  const box = error && error.field ? form.querySelector('.field-error[data-field="' + CSS.escape(error.field) + '"]') : null;
  if (box) {
    box.textContent = String(error.message).replace(new RegExp("^" + error.field + ": "), "");
    box.hidden = false;
    const input = box.parentElement.querySelector("input, select");
    if (input) input.setAttribute("aria-invalid", "true");
  } else {
    status.textContent = (error && error.message) || "Something went wrong.";
  }
}

function describe(job) {
  const stage = (job.options && job.options.stage) || job.state;
  const steps = job.total_bytes;
  const share = steps ? " (" + Math.floor((100 * (job.done_bytes || 0)) / steps) + "%)" : "";
  const what = job.kind === "merge" ? "Merge" : "Conversion";
  if (job.state === "done") return what + " done: " + job.destination + " is listed below the scan, disabled: enable it above.";
  if (job.state === "failed") return what + " failed: " + (job.error || "no reason given");
  if (job.state === "cancelled") return what + " cancelled.";
  return what + " of " + job.destination + ": " + stage + share;
}

/** Follow a job until it ends; then the models table is scanned again (its own button). */
function follow(job, status) {
  status.textContent = describe(job);
  status.classList.toggle("is-ok", job.state === "done");
  if (["done", "failed", "cancelled"].includes(job.state)) {
    if (job.state === "done") {
      const scan = byId("scan-models");
      if (scan && !scan.disabled) scan.click();
    }
    return;
  }
  window.setTimeout(() => {
    api("GET", "/api/v1/admin/model-jobs/" + encodeURIComponent(job.id)).then((res) => {
      if (res.ok) follow(res.data, status);
      else status.textContent = errorText(res, "The job's progress could not be read.");
    });
  }, FOLLOW_MS);
}

function submit(form, path, body, status, button) {
  clearFieldErrors(form);
  status.textContent = "";
  button.disabled = true;
  api("POST", path, body).then((res) => {
    button.disabled = false;
    if (!res.ok) {
      showFieldError(form, res.error, status);
      return;
    }
    form.querySelector('input[name="destination"]').value = "";
    follow(res.data, status);
  });
}

convertForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submit(convertForm, "/api/v1/admin/models/convert",
    { model: convertSelect.value, destination: byId("convert-destination").value, dtype: byId("convert-dtype").value },
    byId("convert-status"), byId("convert-start"));
});

mergeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const three = methodSelect.value === "add_difference";
  const models = selects.slice(0, three ? 3 : 2).map((s) => s.value);
  submit(mergeForm, "/api/v1/admin/models/merge",
    { models, method: methodSelect.value, alpha: Number(alphaInput.value), destination: byId("merge-destination").value,
      dtype: byId("merge-dtype").value },
    byId("merge-status"), byId("merge-start"));
});

methodSelect.addEventListener("change", () => {
  const three = methodSelect.value === "add_difference";
  cField.hidden = !three;
  selects[2].required = three;
});
alphaInput.addEventListener("input", () => { alphaValue.textContent = Number(alphaInput.value).toFixed(2); });

new MutationObserver(sync).observe(tbody, { childList: true, subtree: true, attributes: true,
  attributeFilter: ["data-state", "data-format"] });
sync();
