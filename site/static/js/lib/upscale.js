/* Daydream — "Upscale" for one image: ×2 or ×4, an upscaler (GET /api/v1/models, kind
 * upscaler: a model or a built-in resampler) and an optional refining pass, its cost shown
 * before submitting (POST /api/v1/estimate {"upscale": …}); submitting makes a task (POST
 * /api/v1/upscales). Used by the gallery's lightbox (pages/gallery/upscaling.js: the form
 * in its details panel, following the task by polling) and the studio's cards
 * (pages/studio/timeline.js: upscaleDialog, the card follows the task). Styles:
 * css/lightbox.css (.upscale).
 *
 *   createUpscaleForm({onSubmitted(task), idPrefix}) → {root, show(image), setBusy(on)}
 *   upscaleDialog(image, {onSubmitted(task)})     → a modal dialog with the form; closes on submit
 *   upscaleBody(image, choice)                    → the request's body (pure, for the tests)
 *   progressText(task)                            → "Upscaling… 3 of 19" (pure) */
import { api, errorText } from "./api.js";
import { el } from "./dom.js";
import { ensureStylesheet, formDialog } from "./formdialog.js";
import { plural } from "./format.js";

const SCALES = [2, 4];
const BUILTINS = [{ id: "lanczos", name: "Lanczos" }, { id: "nearest", name: "Nearest" }];

let upscalers = null; // Promise of [{id, name}], asked for once
function loadUpscalers() {
  if (!upscalers) {
    upscalers = api("GET", "/api/v1/models").then((res) => {
      const items = ((res.ok && res.data && res.data.items) || []).filter((m) => m.kind === "upscaler");
      return items.length ? items.map((m) => ({ id: m.id, name: m.name || m.id })) : BUILTINS;
    });
  }
  return upscalers;
}

/** The body of POST /api/v1/upscales for `image` and the form's choice {scale, upscaler, refine}. */
export function upscaleBody(image, choice) {
  const body = { image: image.id, scale: choice.scale, upscaler: choice.upscaler || "lanczos" };
  if (choice.refine) body.refine = {};
  return body;
}

/** A task's progress in words. */
export function progressText(task) {
  const p = task.progress || {};
  if (task.state === "queued") return task.position ? "Waiting in the queue: position " + task.position : "Waiting in the queue…";
  if (task.state === "running") return p.total ? "Upscaling… " + (p.step || 0) + " of " + p.total : "Upscaling…";
  if (task.state === "done") return "Done: " + task.width + " × " + task.height + ".";
  if (task.state === "canceled") return "Canceled; your tokens were refunded.";
  return task.error || "The upscale failed; your tokens were refunded.";
}

export function createUpscaleForm(options) {
  const o = options || {};
  const id = (name) => (o.idPrefix || "upscale") + "-" + name;
  let image = null;
  let scale = 2;
  let seq = 0;
  let busy = false;
  let costOk = false;

  const scaleButtons = SCALES.map((s) => el("button", {
    type: "button", class: "btn btn--tiny btn--ghost upscale__scale", "aria-pressed": s === scale ? "true" : "false",
    dataset: { scale: String(s) }, text: "×" + s, "aria-label": "Upscale ×" + s,
  }));
  const select = el("select", { id: id("upscaler") });
  const refine = el("input", { type: "checkbox", id: id("refine") });
  const cost = el("p", { class: "upscale__cost muted", id: id("cost"), "aria-live": "polite" });
  const go = el("button", { type: "button", class: "btn btn--small btn--primary upscale__go", id: id("go"), text: "Upscale ×2" });
  const error = el("p", { class: "field-error upscale__error", id: id("error"), role: "alert", hidden: true });
  const root = el("section", { class: "upscale", id: id("form"), "aria-labelledby": id("title") }, [
    el("h3", { class: "upscale__title", id: id("title"), text: "Upscale" }),
    el("div", { class: "upscale__scales", role: "group", "aria-label": "Scale" }, scaleButtons),
    el("div", { class: "field upscale__field" }, [el("label", { for: id("upscaler"), text: "Upscaler" }), select]),
    el("label", { class: "checkbox upscale__refine" }, [refine, " ",
      el("span", { text: "Refine" }), el("span", { class: "muted", text: " — a light pass of the model that adds detail" })]),
    cost, error, go,
  ]);

  function choice() { return { scale, upscaler: select.value, refine: refine.checked }; }

  function showError(text) {
    error.textContent = text || "";
    error.hidden = !text;
  }

  function refreshCost() {
    if (!image) return;
    const mine = ++seq;
    costOk = false;
    go.disabled = true;
    cost.textContent = "Working out the cost…";
    api("POST", "/api/v1/estimate", { upscale: upscaleBody(image, choice()) }).then((res) => {
      if (mine !== seq) return;
      if (!res.ok || !res.data) {
        cost.textContent = "";
        showError(errorText(res, "This upscale cannot be made."));
        go.disabled = true;
        return;
      }
      showError("");
      costOk = true;
      go.disabled = busy;
      cost.textContent = "Costs " + plural(res.data.cost, "token", "tokens") + " · " + res.data.width + " × " + res.data.height;
    });
  }

  function setScale(s) {
    scale = s;
    scaleButtons.forEach((b) => b.setAttribute("aria-pressed", Number(b.dataset.scale) === s ? "true" : "false"));
    go.textContent = "Upscale ×" + s;
    refreshCost();
  }

  scaleButtons.forEach((b) => b.addEventListener("click", () => setScale(Number(b.dataset.scale))));
  select.addEventListener("change", refreshCost);
  refine.addEventListener("change", refreshCost);
  go.addEventListener("click", () => {
    if (!image || busy || !costOk) return;
    setBusy(true);
    api("POST", "/api/v1/upscales", upscaleBody(image, choice())).then((res) => {
      if (!res.ok || !res.data) {
        setBusy(false);
        showError(errorText(res, "Could not start the upscale."));
        return;
      }
      if (o.onSubmitted) o.onSubmitted(res.data);
    });
  });

  function setBusy(on) {
    busy = !!on;
    go.disabled = busy || !costOk;
  }

  function show(next) {
    const changedImage = !image || !next || image.id !== next.id;
    image = next;
    root.hidden = !image || image.kind === "mask" || image.review === "held";
    if (root.hidden || !changedImage) return;
    showError("");
    loadUpscalers().then((items) => {
      const kept = select.value;
      select.replaceChildren(...items.map((u) => el("option", { value: u.id, text: u.name })));
      if (items.some((u) => u.id === kept)) select.value = kept;
      refreshCost();
    });
  }

  return { root, show, setBusy };
}

/** The form in a modal dialog (the studio's cards): closes once the task is submitted. */
export function upscaleDialog(image, options) {
  ensureStylesheet("/static/css/lightbox.css");  // (a page with no lightbox: the studio)
  return formDialog("upscale", createUpscaleForm, image, options);
}
