/* Daydream studio — the user's studio settings (the popover #settings-panel, kept on the
 * server with PATCH /api/v1/me) and the balance from GET /api/v1/me. */
import { api, errorText } from "../../lib/api.js";
import { setBalance } from "../../lib/balance.js";
import { $all, byId } from "../../lib/dom.js";
import { popover } from "../../lib/popover.js";
import { state } from "./state.js";
import { rerenderAll } from "./timeline.js";

let statusTimer = null;
let balanceTimer = null;

function settingInputs() { return $all("#settings-panel input[data-setting]"); }

export function renderSettings() {
  settingInputs().forEach((input) => {
    const key = input.dataset.setting;
    if (typeof state.settings[key] === "boolean" && !input.disabled) input.checked = state.settings[key];
  });
}

/** Take what GET/PATCH /api/v1/me answered: the balance and the settings. */
export function applyMe(user) {
  if (!user) return;
  if (typeof user.tokens === "number") setBalance(user.tokens);
  if (user.settings && typeof user.settings === "object") {
    const previewsBefore = state.settings.previews;
    Object.assign(state.settings, user.settings);
    renderSettings();
    if (previewsBefore !== state.settings.previews) rerenderAll();
  }
}

/** Ask for the balance (and settings) again, once for calls close together. */
export function refreshBalance() {
  window.clearTimeout(balanceTimer);
  balanceTimer = window.setTimeout(() => {
    api("GET", "/api/v1/me").then((res) => {
      if (res.ok && res.data) applyMe(res.data);
    });
  }, 120);
}

function setSettingsStatus(text) {
  const node = byId("settings-status");
  if (!node) return;
  window.clearTimeout(statusTimer);
  node.textContent = text;
  if (text) statusTimer = window.setTimeout(() => { node.textContent = ""; }, 2500);
}

export function initSettings() {
  const toggle = byId("settings-toggle");
  const panel = byId("settings-panel");
  const errorBox = byId("settings-error");
  const inputs = settingInputs();

  popover(toggle, panel, { onOpen: () => { if (inputs[0]) inputs[0].focus(); } });

  inputs.forEach((input) => {
    input.addEventListener("change", () => {
      const key = input.dataset.setting;
      const value = input.checked;
      if (errorBox) errorBox.hidden = true;
      input.disabled = true;
      setSettingsStatus("Saving…");
      api("PATCH", "/api/v1/me", { settings: { [key]: value } }).then((res) => {
        input.disabled = false;
        if (res.ok && res.data) {
          if (!res.data.settings) state.settings[key] = value;
          applyMe(res.data);
          if (key === "previews") rerenderAll();
          setSettingsStatus("Saved.");
        } else {
          input.checked = !value;
          setSettingsStatus("");
          if (errorBox) {
            errorBox.textContent = errorText(res, "Could not save this setting.");
            errorBox.hidden = false;
          }
        }
      });
    });
  });
}
