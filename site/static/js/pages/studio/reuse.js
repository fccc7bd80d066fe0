/* Daydream studio — putting a task's (or an image's) settings back into the panel: the
 * cards' "Reuse settings" and "Variant", and /studio?reuse=IMAGE or ?variant=IMAGE from the gallery.
 * An inpaint's mask and settings, and an outpaint's sides, come back with it (inpaint.js);
 * its control units, references and the pictures of an edit too (guidepanel.js). */
import { api, errorText } from "../../lib/api.js";
import { announce, byId } from "../../lib/dom.js";
import { isNumber } from "../../lib/format.js";
import { pageParams } from "./config.js";
import { setField, showFormError } from "./fields.js";
import { onFormChanged, setSizeHint, updatePromptCount } from "./form.js";
import { restoreGuideFields } from "./guidepanel.js";
import { setLoras } from "./lorapicker.js";
import { applyCard, renderFast } from "./models.js";
import { restoreHires } from "./hires.js";
import { restoreEdit } from "./inpaint.js";
import { isDrawer, openPanel } from "./panel.js";
import { clearInitImage, setInitFit, setInitImage } from "./upload.js";

/**
 * Put a task's settings back into the form: its model (and that model's card), scheduler
 * and LoRAs too. options.seed overrides the task's seed;
 * options.init: an image to start from, null to clear the init image, or undefined for
 * the task's own init image (if it had one).
 */
export function reuseSettings(task, options = {}) {
  // The model first: its card decides the schedulers, the size limits and the LoRAs offered.
  if (task.model) setField("model", task.model);
  const { card } = applyCard();
  renderFast(card, !!task.fast); // (a fast task's reuse ticks Fast mode where the model lets the user choose)
  setField("prompt", task.prompt || "");
  setField("negative_prompt", task.negative_prompt || "");
  ["width", "height", "steps", "guidance", "samples"].forEach((id) => {
    if (task[id] !== undefined && task[id] !== null) setField(id, task[id]);
  });
  const seed = options.seed !== undefined ? options.seed : task.seed;
  setField("seed", seed === null || seed === undefined ? "" : seed);
  if (task.scheduler) setField("scheduler", task.scheduler);
  setLoras(Array.isArray(task.loras) ? task.loras : []);
  setSizeHint("");

  let init = options.init;
  if (init === undefined) {
    const own = task.init_image;
    if (own && typeof own === "object") init = own;
    else if (typeof own === "string" && own) init = { id: own };
    else init = null;
  }
  if (init) {
    setInitImage(init);
    if (isNumber(task.strength)) setField("strength", task.strength);
    if (task.init_fit) setInitFit(task.init_fit);
    // Inpaint or outpaint: its settings, the size before the outpaint, the mask (inpaint.js).
    restoreEdit(task, init);
  } else {
    clearInitImage();
  }
  restoreHires(init ? null : task); // (text to image only)
  restoreGuideFields(task);

  updatePromptCount();
  onFormChanged();
  const prompt = byId("prompt");
  if (isDrawer()) openPanel();
  else if (prompt) prompt.focus();
  const preview = byId("init-preview");
  if (init && preview && preview.scrollIntoView && !isDrawer()) preview.scrollIntoView({ block: "nearest" });
}

/** /studio?reuse=IMAGE or ?variant=IMAGE: that image's settings (and, for a variant, the image itself). */
export function applyImageFromUrl() {
  const reuse = pageParams.get("reuse");
  const variant = pageParams.get("variant");
  const imageId = variant || reuse;
  if (!imageId) return;
  // Only once: a reload should not pull the settings in again.
  pageParams.delete("reuse");
  pageParams.delete("variant");
  const rest = pageParams.toString();
  window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  const base = "/api/v1/images/" + encodeURIComponent(imageId);
  Promise.all([api("GET", base), api("GET", base + "/metadata")]).then(([image, meta]) => {
    if (!image.ok || !image.data) {
      showFormError(errorText(image, "That image could not be found."));
      return;
    }
    const data = meta.ok && meta.data ? meta.data : {};
    const seed = isNumber(image.data.seed) ? image.data.seed : data.seed;
    if (!data.prompt) {
      // An upload (or an image without parameters): start from it, keep the rest.
      setInitImage(image.data);
      if (isDrawer()) openPanel();
      announce("The panel starts from this image.");
      return;
    }
    if (variant) {
      reuseSettings(data, { seed, init: image.data });
      announce("Variant: the panel starts from this image with seed " + seed + ".");
    } else {
      reuseSettings(data, { seed, init: null });
      announce("The settings of this image are in the panel.");
    }
  });
}
