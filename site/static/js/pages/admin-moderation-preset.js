/* Daydream — Admin → Moderation: the server's moderation preset (the section
 * rendered by admin/_moderation_preset.html).
 *
 * PUT /api/v1/admin/moderation/preset  {preset: "standard" | "strict"} -> {preset, configured, presets}
 */
import { api, errorText } from "../lib/api.js";
import { byId } from "../lib/dom.js";
import { busy, say, showAlert } from "../lib/forms.js";

const form = byId("preset-form");

function chosen() {
  const input = form.querySelector('input[name="preset"]:checked');
  return input ? input.value : "";
}

let saved = chosen();

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const preset = chosen();
  if (!preset) return;
  showAlert("preset-alert", "");
  const button = byId("preset-save");
  busy(button, true);
  api("PUT", "/api/v1/admin/moderation/preset", { preset }).then((res) => {
    busy(button, false);
    if (!res.ok) {
      showAlert("preset-alert", errorText(res, "Could not save the preset."));
      say("preset-status", "");
      return;
    }
    saved = res.data.preset;
    say("preset-status", saved === "strict"
      ? "Saved: prompts are checked against the strict rules from the next submit."
      : "Saved: prompts are checked against the standard rules from the next submit.", true);
  });
});

form.addEventListener("change", () => {
  say("preset-status", chosen() === saved ? "" : "Not saved yet.");
});
