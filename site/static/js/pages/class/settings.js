/* Daydream — the Class page's settings (pages/class/main.js): budget (staff), caps, the
 * models and LoRAs pupils may use, the prompt rules and sharing, sent as one PATCH. */
import { api } from "../../lib/api.js";
import { $, $all, byId } from "../../lib/dom.js";
import { busy, clearErrors, say, showErrors } from "../../lib/forms.js";

/** A number field: its whole number, or null when empty. */
function capOf(input) {
  const text = input.value.trim();
  return text === "" ? null : Number(text);
}

function allowedOf(fieldset) {
  if ($("input[data-all]", fieldset).checked) return null;
  return $all('input[type="checkbox"]:not([data-all])', fieldset).filter((box) => box.checked).map((box) => box.value);
}

export function initSettings(page) {
  const form = byId("settings-form");
  const staff = byId("class-page").dataset.staff === "true";

  $all("fieldset.allowed", form).forEach((fieldset) => {
    $("input[data-all]", fieldset).addEventListener("change", (event) => {
      $(".allowed__list", fieldset).hidden = event.target.checked;
    });
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      images_per_hour: capOf(byId("cap-hour")),
      images_per_day: capOf(byId("cap-day")),
      moderation_preset: byId("preset").value || null,
      gallery: byId("gallery-open").checked,
    };
    $all("fieldset.allowed", form).forEach((fieldset) => { body[fieldset.dataset.field] = allowedOf(fieldset); });
    if (staff) {
      body.budget_mode = byId("budget-mode").value;
      body.budget_tokens = Number(byId("budget-tokens").value || 0);
      body.budget_period = byId("budget-period").value;
    }
    const button = byId("settings-save");
    busy(button, true, "Saving…");
    api("PATCH", page.apiBase, body).then((res) => {
      busy(button, false);
      if (!res.ok) {
        showErrors(form, res.error, "images_per_hour");
        say("settings-status", "Not saved.");
        return;
      }
      say("settings-status", "Saved.", true);
      page.refresh("audit");
    });
  });
}
